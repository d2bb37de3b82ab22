"""Your own vectors instead of the model's: read a features file and match it to the images.

``--features FILE`` replaces the embed stage's model with vectors computed elsewhere (CLIP,
a model of your own, colour histograms): any dimension, one vector per image. Two forms:

* **Parquet**: a key column, ``filename`` (the image's path relative to the source folder,
  as in the catalog's ``path`` column; ``path`` is accepted too) or ``id`` (the catalog's
  id), and one column of vectors: a list or fixed-size list of numbers. With several list
  columns the one named ``embedding``, ``features``, ``vector`` or ``vectors`` is taken.
  A row whose vector is null is left out (its image has none), so ``postermap export
  --embeddings`` of one map is a features file for another.
* **NumPy**: ``FILE.npy`` (N x D numbers) with the keys beside it, row for row, in
  ``FILE.ids.txt`` (one per line, a filename or an id) or ``FILE.ids.parquet`` (one
  column, ``filename`` or ``id``). ``vectors.npy`` -> ``vectors.ids.txt``.

A file that cannot be used as a whole (wrong column types, NaN or infinite values, ragged
lengths, dimension 0, a key given twice, an ids file that does not line up) raises
:class:`FeaturesError` naming the file and the row. An image the file has no vector for
is not the run's death: the embed stage turns it into an ``error`` row with the reason
:func:`missing_reason`; vectors whose key names no input file are counted and reported.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from postermap.errors import FeaturesError

#: key columns, in the order they are looked for (``filename`` and ``path`` match the
#: catalog's ``path`` column)
KEY_COLUMNS = ("filename", "path", "id")
#: names that pick the vector column among several list columns
VECTOR_NAMES = ("embedding", "features", "vector", "vectors", "embeddings")
#: suffixes of the ids file beside a ``.npy``
IDS_SUFFIXES = (".ids.txt", ".ids.parquet")


@dataclass(frozen=True)
class FeatureFile:
    """The vectors of a features file: ``vectors[i]`` belongs to ``keys[i]``, which is a
    filename (catalog ``path``), an ``id``, or either (``kind == "either"``: a plain ids
    file, matched as a filename first)."""

    path: Path
    keys: list[str]
    kind: str
    vectors: np.ndarray

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])


@dataclass(frozen=True)
class Match:
    """How a features file meets the images: ``row_of[content_hash]`` is the vector row of
    each distinct readable image that has one; ``missing`` the content hashes without one;
    ``unknown`` the keys that name no input file."""

    row_of: dict[str, int]
    missing: list[str]
    unknown: list[str]


def read_features(path: str | Path) -> FeatureFile:
    """The vectors and keys of ``path`` (Parquet, or ``.npy`` with its ids file), checked.

    Raises:
        FeaturesError: the file is missing or cannot be used (see the module docstring).
    """
    path = Path(path)
    if not path.is_file():
        raise FeaturesError(f"--features {path}: no such file")
    if path.suffix.lower() == ".npy":
        return _read_npy(path)
    return _read_parquet(path)


def ids_file_of(path: Path) -> Path | None:
    """The ids file beside a ``.npy`` features file (``X.ids.txt`` or ``X.ids.parquet``
    for ``X.npy``), or None."""
    for suffix in IDS_SUFFIXES:
        candidate = path.with_name(path.stem + suffix)
        if candidate.is_file():
            return candidate
    return None


def features_fingerprint(path: str | Path) -> str:
    """sha256 of the file's bytes (and its ids file's): a changed file re-runs embed, a
    moved or renamed one with the same content does not."""
    path = Path(path)
    digest = hashlib.sha256()
    files = [path]
    if path.suffix.lower() == ".npy":
        ids = ids_file_of(path)
        files += [ids] if ids is not None else []
    for name in files:
        if not name.is_file():
            raise FeaturesError(f"--features {name}: no such file")
        with open(name, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def match_features(features: FeatureFile, ingest_rows: list[dict]) -> Match:
    """Match the file's keys to ingest rows (``id``, ``path``, ``status``,
    ``content_hash``). Byte-identical copies share one vector: the first copy (in row
    order) that has one gives it."""
    by_path = {_normal_key(r["path"]): n for n, r in enumerate(ingest_rows) if r["path"]}
    by_id = {r["id"]: n for n, r in enumerate(ingest_rows)}
    vector_of_row: dict[int, int] = {}
    unknown = []
    for i, key in enumerate(features.keys):
        row = None
        if features.kind in ("filename", "either"):
            row = by_path.get(_normal_key(key))
        if row is None and features.kind in ("id", "either"):
            row = by_id.get(key)
        if row is None:
            unknown.append(key)
        else:
            vector_of_row[row] = i
    row_of: dict[str, int] = {}
    wanted: list[str] = []
    for n, r in enumerate(ingest_rows):
        if r["status"] != "ok":
            continue
        chash = r["content_hash"]
        if chash not in row_of and n in vector_of_row:
            row_of[chash] = vector_of_row[n]
        wanted.append(chash)
    missing = sorted({h for h in wanted if h not in row_of})
    return Match(row_of, missing, unknown)


def missing_reason(path: str | Path) -> str:
    """The ``reason`` of an image the features file has no vector for."""
    return f"no vector for this image in {Path(path).name}"


def _read_parquet(path: Path) -> FeatureFile:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as err:
        raise FeaturesError(
            f"--features {path}: not a Parquet file ({err}); give a Parquet file, or a "
            f".npy with its ids in {path.stem}.ids.txt"
        ) from err
    column = _vector_column(path, table)
    if table[column].null_count:  # a row without a vector: its image has none
        table = table.filter(pc.invert(pc.is_null(table[column])))
    kind, keys = _key_column(path, table)
    return FeatureFile(path, keys, kind, _list_values(path, column, table[column]))


def _key_column(path: Path, table) -> tuple[str, list[str]]:
    import pyarrow as pa

    for name in KEY_COLUMNS:
        if name in table.column_names:
            column = table[name]
            if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
                raise FeaturesError(
                    f"--features {path}: column {name!r} must hold text, not {column.type}"
                )
            keys = column.to_pylist()
            for row, key in enumerate(keys):
                if key is None or not key.strip():
                    raise FeaturesError(f"--features {path}: row {row} has an empty {name!r}")
            _no_repeats(path, keys)
            return ("filename" if name != "id" else "id"), [k.strip() for k in keys]
    raise FeaturesError(
        f"--features {path}: no key column; name one column 'filename' (the image's path "
        f"relative to the source folder) or 'id'; columns: {', '.join(table.column_names)}"
    )


def _vector_column(path: Path, table) -> str:
    import pyarrow as pa

    lists = [
        f.name
        for f in table.schema
        if pa.types.is_list(f.type)
        or pa.types.is_large_list(f.type)
        or pa.types.is_fixed_size_list(f.type)
    ]
    named = [n for n in VECTOR_NAMES if n in table.column_names]
    if named:
        name = named[0]
        if name not in lists:
            raise FeaturesError(
                f"--features {path}: column {name!r} must be a list of numbers, "
                f"not {table.schema.field(name).type}"
            )
        return name
    if len(lists) == 1:
        return lists[0]
    if not lists:
        raise FeaturesError(
            f"--features {path}: no column of vectors (a list or fixed-size list of numbers); "
            f"columns: {', '.join(f'{f.name} ({f.type})' for f in table.schema)}"
        )
    raise FeaturesError(
        f"--features {path}: several list columns ({', '.join(lists)}); name the vectors "
        f"one of {', '.join(VECTOR_NAMES)}"
    )


def _list_values(path: Path, name: str, column) -> np.ndarray:
    """The list column as an N x D float32 array, or the error naming the first bad row."""
    import pyarrow as pa
    import pyarrow.compute as pc

    column = column.combine_chunks()
    value_type = column.type.value_type
    if not (pa.types.is_floating(value_type) or pa.types.is_integer(value_type)):
        raise FeaturesError(
            f"--features {path}: column {name!r} must hold numbers, not {value_type}"
        )
    n = len(column)
    if n == 0:
        raise FeaturesError(f"--features {path}: no rows")
    lengths = np.asarray(pc.list_value_length(column), dtype=np.int64)
    if not (lengths == lengths[0]).all():
        row = int(np.flatnonzero(lengths != lengths[0])[0])
        raise FeaturesError(
            f"--features {path}: ragged vectors: row {row} has {lengths[row]} values, "
            f"row 0 has {lengths[0]}"
        )
    flat = pc.list_flatten(column)
    if flat.null_count:
        first = int(np.flatnonzero(np.asarray(flat.is_null()))[0])
        row = int(np.searchsorted(np.cumsum(lengths), first, side="right"))
        raise FeaturesError(f"--features {path}: row {row} holds an empty (null) value")
    values = np.asarray(flat.to_numpy(zero_copy_only=False)).reshape(n, int(lengths[0]))
    return _checked(path, values)


def _read_npy(path: Path) -> FeatureFile:
    ids_path = ids_file_of(path)
    if ids_path is None:
        raise FeaturesError(
            f"--features {path}: a .npy needs its ids beside it, row for row: "
            f"{path.stem}.ids.txt (one filename or id per line) or {path.stem}.ids.parquet"
        )
    try:
        vectors = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as err:
        raise FeaturesError(f"--features {path}: not a NumPy array file ({err})") from err
    if vectors.ndim != 2:
        raise FeaturesError(
            f"--features {path}: must be N x D (one row per image), has shape {vectors.shape}"
        )
    if not (np.issubdtype(vectors.dtype, np.floating) or np.issubdtype(vectors.dtype, np.integer)):
        raise FeaturesError(f"--features {path}: must hold numbers, not {vectors.dtype}")
    if ids_path.suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(ids_path)
        kind, keys = _key_column(ids_path, table)
    else:
        kind = "either"
        keys = [line.strip() for line in ids_path.read_text(encoding="utf-8").splitlines()]
        while keys and not keys[-1]:
            keys.pop()
        for row, key in enumerate(keys):
            if not key:
                raise FeaturesError(f"--features {ids_path}: line {row + 1} is empty")
        _no_repeats(ids_path, keys)
    if len(keys) != len(vectors):
        raise FeaturesError(
            f"--features {path}: {len(vectors)} rows of vectors but {len(keys)} ids in "
            f"{ids_path.name}; they must line up row for row"
        )
    return FeatureFile(path, keys, kind, _checked(path, vectors))


def _checked(path: Path, values: np.ndarray) -> np.ndarray:
    """float32 vectors, refusing dimension 0 and NaN / infinite values (checked chunk by
    chunk, so a memory-mapped file is not copied at once)."""
    if values.shape[1] == 0:
        raise FeaturesError(f"--features {path}: the vectors have dimension 0")
    out = np.empty(values.shape, dtype=np.float32)
    step = max(1, (1 << 24) // values.shape[1])
    for start in range(0, len(values), step):
        block = np.asarray(values[start : start + step], dtype=np.float64)
        bad = ~np.isfinite(block).all(axis=1) | (np.abs(block) > np.finfo(np.float32).max).any(
            axis=1
        )
        if bad.any():
            row = start + int(np.flatnonzero(bad)[0])
            raise FeaturesError(
                f"--features {path}: row {row} holds a value that is not a finite number"
            )
        out[start : start + len(block)] = block
    return out


def _no_repeats(path: Path, keys: list[str]) -> None:
    seen: dict[str, int] = {}
    for row, key in enumerate(keys):
        key = _normal_key(key)
        if key in seen:
            raise FeaturesError(
                f"--features {path}: {key!r} is given twice (rows {seen[key]} and {row})"
            )
        seen[key] = row


def _normal_key(key: str) -> str:
    key = key.strip().replace("\\", "/")
    while key.startswith("./"):
        key = key[2:]
    return key
