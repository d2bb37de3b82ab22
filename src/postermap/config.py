"""One dataclass of settings, loaded from TOML and CLI options and validated once.

Each stage names the settings it depends on (``Stage.params``); only those enter its
fingerprint, so changing, say, the DBSCAN radius re-runs clustering and the tiles but not
the embedding.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any


class SettingsError(ValueError):
    """A setting has a value the pipeline cannot use; the message says which and why."""


def read_toml(path: Path, allowed: set[str] | None = None) -> dict[str, Any]:
    """A user-edited TOML file as a dict ({} if missing), with errors that name the file."""
    path = Path(path)
    if not path.exists():
        return {}
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise SettingsError(f"{path}: not valid TOML: {err}") from err
    unknown = set(data) - allowed if allowed is not None else set()
    if unknown:
        raise SettingsError(
            f"{path}: unknown key(s) {', '.join(sorted(unknown))}; "
            f"expected: {', '.join(sorted(allowed))}"
        )
    return data


@dataclass(frozen=True)
class Settings:
    """All knobs of a run, with the defaults the embedded demo uses."""

    # ingest
    source: str | None = None  #: folder of images (recursive), or a manifest of URLs
    metadata: str | None = None  #: CSV with a ``filename`` column plus title/year/...
    url_column: str | None = None  #: manifest column with the URLs (auto-detected)
    title_column: str | None = None  #: manifest column with titles (auto-detected)
    id_column: str | None = None  #: manifest column with the user's ids (auto-detected)
    concurrency: int = 32  #: downloads in flight overall
    per_host: int = 8  #: downloads in flight per host
    retries: int = 3  #: retries of a transient download failure
    timeout: float = 30.0  #: read timeout per request, seconds
    max_bytes: int = 50_000_000  #: larger downloads fail as ``too_large``
    retry_failed: bool = False  #: re-run: try transient download failures again
    max_pixels: int = 120_000_000  #: refuse to decode larger images (decompression bombs)
    thumb_size: int = 256  #: longest side of the stored thumbnail every later stage reads
    workers: int = 2  #: processes decoding images
    #: run decode/embed/tile rendering as Ray tasks: "auto" (this machine's cluster or
    #: RAY_ADDRESS), "local" (a private instance), or an address; None = local processes.
    #: Results are identical either way, so no stage's fingerprint includes it.
    ray: str | None = None
    # clean
    near_cosine: float = 0.88  #: CNN cosine similarity needed to confirm a near duplicate
    near_phash: int = 26  #: ... together with at most this many differing phash bits
    keep_near_duplicates: bool = False  #: flag near duplicates but keep them on the map
    # embed
    model: str = "efficientnet-lite0"
    batch_size: int = 8  #: small batches measured fastest on CPU (cache-resident activations)
    shard_size: int = 1024  #: images per resumable embedding shard
    # reduce
    pca_dims: int = 50
    perplexity: float = 30.0
    seed: int = 42
    # grid
    grid_exact_max: int = 2000  #: above this many images the scalable solver is used
    # cluster
    cluster_method: str = "hdbscan"  #: "hdbscan" (fast-hdbscan) or "dbscan"
    cluster_space: str = "layout"  #: "layout" (2-D t-SNE) or "embedding" (PCA-30)
    min_cluster_size: int = 10  #: HDBSCAN's smallest cluster
    #: HDBSCAN cluster selection: "leaf" (many tight tropes) or "eom" (fewer, larger groups)
    hdbscan_selection: str = "leaf"
    #: DBSCAN radius in units of the mean spacing between images (1/sqrt(N) of the
    #: unit-square layout), so one value suits 300 and 169,000 images alike
    dbscan_eps: float = 1.0
    dbscan_min_samples: int = 8
    # tiles
    cell_size: int = 128  #: pixels per grid cell at full zoom
    tile_quality: int = 85
    background: str = "#202124"

    def __post_init__(self) -> None:
        positive = (
            "max_pixels",
            "thumb_size",
            "workers",
            "concurrency",
            "per_host",
            "timeout",
            "max_bytes",
            "batch_size",
            "shard_size",
            "pca_dims",
            "grid_exact_max",
            "dbscan_min_samples",
            "cell_size",
            "min_cluster_size",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise SettingsError(f"{name} must be positive, got {getattr(self, name)!r}")
        if not 0 < self.near_cosine <= 1:
            raise SettingsError(f"near_cosine must be in (0, 1], got {self.near_cosine}")
        if not 0 <= self.near_phash <= 64:
            raise SettingsError(
                f"near_phash counts bits of a 64-bit hash (0..64), got {self.near_phash}"
            )
        if self.cluster_method not in ("hdbscan", "dbscan"):
            raise SettingsError(
                f"cluster_method must be hdbscan or dbscan, got {self.cluster_method!r}"
            )
        if self.hdbscan_selection not in ("leaf", "eom"):
            raise SettingsError(
                f"hdbscan_selection must be leaf or eom, got {self.hdbscan_selection!r}"
            )
        if self.cluster_space not in ("layout", "embedding"):
            raise SettingsError(
                f"cluster_space must be layout or embedding, got {self.cluster_space!r}"
            )
        if self.retries < 0:
            raise SettingsError(f"retries must be >= 0, got {self.retries}")
        if not 1 <= self.tile_quality <= 100:
            raise SettingsError(f"tile_quality must be 1..100, got {self.tile_quality}")
        if self.perplexity <= 1:
            raise SettingsError(f"perplexity must be > 1, got {self.perplexity}")
        if not 0 < self.dbscan_eps <= 20:
            raise SettingsError(
                f"dbscan_eps is in mean image spacings (0..20], got {self.dbscan_eps}"
            )
        if not (self.background.startswith("#") and len(self.background) == 7):
            raise SettingsError(f"background must look like #rrggbb, got {self.background!r}")
        if self.cell_size < 16 or self.cell_size > 1024:
            raise SettingsError(f"cell_size must be 16..1024 pixels, got {self.cell_size}")

    def subset(self, names: tuple[str, ...]) -> dict[str, Any]:
        """The values of ``names``, for a stage's fingerprint and marker."""
        return {name: getattr(self, name) for name in names}

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_mapping(cls, values: dict[str, Any], origin: str = "settings") -> Settings:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise SettingsError(
                f"{origin}: unknown setting(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(known))}"
            )
        return cls(**values)

    @classmethod
    def load(
        cls, toml_path: Path | None = None, base: Settings | None = None, **overrides: Any
    ) -> Settings:
        """Defaults (or ``base``), then a TOML file, then explicit overrides (None = unset)."""
        values = dataclasses.asdict(base) if base is not None else {}
        if toml_path is not None:
            values.update(read_toml(toml_path))
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.from_mapping(values, origin=str(toml_path or "settings"))
