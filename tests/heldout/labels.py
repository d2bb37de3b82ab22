"""The one labels format of every held-out set, and a writer that keeps images and truth
in step.

A built set is a folder of images plus ``labels.csv``:

``filename``
    path of the image relative to the folder.
``role``
    ``keep`` (must stay on the map), ``duplicate`` (an exact copy: same bytes, or the same
    pixels in another lossless format), ``near_duplicate`` (the same picture transformed)
    or ``boring`` (should be taken off the map as boring).
``duplicate_of``
    for ``duplicate`` / ``near_duplicate``: the filename of the original (a ``keep``
    image); empty otherwise.
``trope``
    name of the planted trope (posters sharing one motif), or empty.
``category``
    free; for the real set its source category.
``kind``
    optional extra column: the recipe that made the image (``near:jpeg``,
    ``boring:template``, ``keeper:transparent``, ``pair:<family>`` ...), so results can be
    broken down by what went wrong. Readers must not require it.

``labels.csv`` is written last, so its presence means the folder is complete. A
``metadata.csv`` (``filename``, ``title``) is written beside it for postermap's viewer.
"""

from __future__ import annotations

import csv
import hashlib
import io
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from PIL import Image

ROLES = ("keep", "duplicate", "near_duplicate", "boring")
COLUMNS = ("filename", "role", "duplicate_of", "trope", "category", "kind")


@dataclass(frozen=True)
class Label:
    filename: str
    role: str
    duplicate_of: str = ""
    trope: str = ""
    category: str = ""
    kind: str = ""


def read_labels(folder: Path) -> list[Label]:
    """Rows of ``folder/labels.csv`` (``kind`` may be absent)."""
    with open(folder / "labels.csv", newline="", encoding="utf-8") as fh:
        return [Label(**{c: (row.get(c) or "") for c in COLUMNS}) for row in csv.DictReader(fh)]


def write_labels(folder: Path, labels: list[Label], titles: dict[str, str] | None = None) -> None:
    """Write ``labels.csv`` (and ``metadata.csv`` when titles are given) atomically."""
    if titles:
        _write_csv(
            folder / "metadata.csv",
            ("filename", "title"),
            [{"filename": f, "title": t} for f, t in sorted(titles.items())],
        )
    _write_csv(folder / "labels.csv", COLUMNS, [asdict(label) for label in labels])


def _write_csv(path: Path, columns: tuple[str, ...], rows: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    tmp = path.with_name(f".tmp-{path.name}")
    tmp.write_text(buffer.getvalue(), encoding="utf-8")
    tmp.replace(path)


class SetWriter:
    """Saves images under neutral names and records their labels.

    File names are a hash of (set, seed, key), so neither the name nor the path order
    tells the pipeline anything about the truth (the clean stage keeps the first exact copy
    by path, so descriptive names would decide which copy survives).
    """

    def __init__(self, out: Path, name: str, seed: int) -> None:
        if out.exists() and any(out.iterdir()):
            raise FileExistsError(f"{out} is not empty")
        out.mkdir(parents=True, exist_ok=True)
        self.out = out
        self._prefix = f"{name}/{seed}/"
        self.labels: list[Label] = []
        self.titles: dict[str, str] = {}
        self._names: set[str] = set()

    def filename(self, key: str, ext: str) -> str:
        digest = hashlib.sha1((self._prefix + key).encode()).hexdigest()[:12]
        name = f"{digest}.{ext}"
        if name in self._names:
            raise ValueError(f"duplicate key {key!r}")
        self._names.add(name)
        return name

    def save(
        self,
        image: Image.Image,
        key: str,
        ext: str,
        role: str,
        *,
        duplicate_of: str = "",
        trope: str = "",
        category: str = "",
        kind: str = "",
        title: str = "",
        **save_options,
    ) -> str:
        """Save ``image`` as a new file; returns its filename."""
        name = self.filename(key, ext)
        if ext in ("jpg", "jpeg") and image.mode not in ("RGB", "L"):
            image = image.convert("RGB")
        image.save(self.out / name, **save_options)
        self._record(name, role, duplicate_of, trope, category, kind, title)
        return name

    def save_bytes(
        self,
        data: bytes,
        key: str,
        ext: str,
        role: str,
        *,
        category: str = "",
        kind: str = "",
        title: str = "",
    ) -> str:
        """Store an already encoded file as it is."""
        name = self.filename(key, ext)
        (self.out / name).write_bytes(data)
        self._record(name, role, "", "", category, kind, title)
        return name

    def copy_bytes(self, original: str, key: str, *, kind: str = "exact:bytes") -> str:
        """A byte-for-byte copy of an already saved file, labelled ``duplicate``."""
        ext = original.rsplit(".", 1)[-1]
        name = self.filename(key, ext)
        shutil.copyfile(self.out / original, self.out / name)
        self._record(name, "duplicate", original, "", "", kind, self.titles.get(original, ""))
        return name

    def _record(
        self,
        name: str,
        role: str,
        duplicate_of: str,
        trope: str,
        category: str,
        kind: str,
        title: str,
    ) -> None:
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}")
        self.labels.append(Label(name, role, duplicate_of, trope, category, kind))
        if title:
            self.titles[name] = title

    def finish(self) -> Path:
        write_labels(self.out, self.labels, self.titles)
        return self.out
