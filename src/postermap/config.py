"""Every setting of postermap, declared once: default, type, check, help, who reads it.

:class:`Settings` is the table. Each field is made with :func:`setting`, which records the
help text, the stages that read the value, whether it changes their output (``affects``:
only those enter a stage's fingerprint, so a changed DBSCAN radius re-runs clustering and
the tiles but not the embedding, while ``--workers`` re-runs nothing), its validation and
its CLI group. From this one table come:

* validation (:meth:`Settings.__post_init__`),
* the CLI options (``postermap.cli`` walks :func:`cli_settings`),
* each stage's parameters (:func:`stage_settings`) and the view a stage gets
  (:class:`StageSettings`, which refuses to hand out a setting its stage did not declare),
* the README's options table (:func:`settings_markdown`; a test compares them).

Values are loaded from defaults < the workspace's ``settings.json`` < a TOML file < CLI
options, and validated once.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
import typing
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from postermap.errors import SettingsError

#: What a check returns: None when the value is fine, else what is wrong with it.
Check = Callable[[Any], str | None]


def setting(
    default: Any,
    help: str,
    *,
    stages: tuple[str, ...] = (),
    affects: bool = True,
    check: Check | None = None,
    choices: tuple[str, ...] | None = None,
    group: str = "map",
    metavar: str | None = None,
    remember: bool = True,
) -> Any:
    """A :class:`Settings` field with its row of the settings table.

    Args:
        default: the value the embedded demo uses.
        help: one line for ``--help`` and the README table.
        stages: the stages that read it (a stage reading any other setting fails).
        affects: False for settings that change how, not what, a stage computes (worker
            counts, where work runs, download politeness): they are left out of
            fingerprints, so changing them re-runs nothing.
        check: validation of the value (see :func:`positive`, :func:`within`).
        choices: the allowed values of a string setting.
        group: ``source`` for options of the commands that read a source (``run``,
            ``ingest``, ``add``), ``map`` for every command.
        metavar: how the CLI help shows the value.
        remember: False for per-invocation choices the workspace should not keep.
    """
    return field(
        default=default,
        metadata={
            "help": help,
            "stages": stages,
            "affects": affects,
            "check": check,
            "choices": choices,
            "group": group,
            "metavar": metavar,
            "remember": remember,
        },
    )


def positive(value: Any) -> str | None:
    return None if value > 0 else "must be positive"


def at_least(low: float) -> Check:
    return lambda value: None if value >= low else f"must be >= {low}"


def within(low: float, high: float, *, open_low: bool = False, unit: str = "") -> Check:
    """``low <= value <= high`` (``low < value`` with ``open_low``)."""
    bracket = "(" if open_low else "["

    def check(value: Any) -> str | None:
        ok = (value > low if open_low else value >= low) and value <= high
        return None if ok else f"must be in {bracket}{low}, {high}]{unit}"

    return check


def hex_colour(value: Any) -> str | None:
    ok = (
        isinstance(value, str)
        and len(value) == 7
        and value.startswith("#")
        and all(c in "0123456789abcdefABCDEF" for c in value[1:])
    )
    return None if ok else "must look like #rrggbb"


INGEST = ("ingest",)


@dataclass(frozen=True)
class Settings:
    """All knobs of a run, with the defaults the embedded demo uses."""

    # -- ingest: what is read --------------------------------------------------------------
    source: str | None = setting(
        None,
        "folder of images (searched recursively) or a manifest of URLs",
        stages=INGEST,
        group="argument",
    )
    metadata: str | None = setting(
        None,
        "CSV with a `filename` column joined to each image (default: SOURCE/metadata.csv)",
        stages=INGEST,
        group="source",
        metavar="FILE",
    )
    url_column: str | None = setting(
        None,
        "manifest column holding the image URLs (auto-detected)",
        stages=INGEST,
        group="source",
        metavar="NAME",
    )
    title_column: str | None = setting(
        None,
        "manifest column holding the titles (auto-detected)",
        stages=INGEST,
        group="source",
        metavar="NAME",
    )
    id_column: str | None = setting(
        None,
        "manifest column holding your own ids (auto-detected)",
        stages=INGEST,
        group="source",
        metavar="NAME",
    )
    max_bytes: int = setting(
        50_000_000,
        "largest download accepted; larger bodies fail as `too_large`",
        stages=INGEST,
        check=positive,
        group="source",
    )
    max_pixels: int = setting(
        120_000_000,
        "larger images are refused before decoding (decompression bombs)",
        stages=INGEST,
        check=positive,
    )
    thumb_size: int = setting(
        256,
        "longest side of the thumbnail every later stage reads",
        stages=("ingest", "embed"),
        check=within(16, 4096),
    )
    # -- ingest: how it is read (no effect on the output) ------------------------------------
    concurrency: int = setting(
        32,
        "downloads in flight overall",
        stages=INGEST,
        affects=False,
        check=positive,
        group="source",
    )
    per_host: int = setting(
        8,
        "downloads in flight per host (politeness)",
        stages=INGEST,
        affects=False,
        check=positive,
        group="source",
    )
    retries: int = setting(
        3,
        "retries of a transient download failure (timeout, dropped connection, 408/429/5xx)",
        stages=INGEST,
        affects=False,
        check=at_least(0),
        group="source",
    )
    timeout: float = setting(
        30.0,
        "read timeout per request, seconds",
        stages=INGEST,
        affects=False,
        check=positive,
        group="source",
    )
    retry_failed: bool = setting(
        False,
        "on a re-run, try rows that failed transiently again",
        stages=INGEST,
        affects=False,
        group="source",
    )
    workers: int = setting(
        2,
        "processes decoding and embedding images, comparing near-duplicate candidates and "
        "rendering tiles",
        stages=("ingest", "embed", "clean", "reduce", "grid", "tiles"),
        affects=False,
        check=positive,
        metavar="N",
    )
    ray: str | None = setting(
        None,
        "run decoding, embedding and mosaic rendering as Ray tasks: `auto`, `local` or a "
        "cluster address (see Scaling out on Ray); results are identical, so it is not kept",
        stages=("ingest", "embed", "tiles"),
        affects=False,
        metavar="ADDR",
        remember=False,
    )
    # -- embed -------------------------------------------------------------------------------
    model: str = setting(
        "efficientnet-lite0",
        "embedding model: `efficientnet-lite0` or `inception-v3` (see Models)",
        stages=("embed", "cluster", "tiles"),
        metavar="NAME",
    )
    precision: str = setting(
        "fp32",
        "arithmetic of the default model: `fp32`, or `int8` (an int8 copy: the model about "
        "2x faster on a CPU with VNNI, features close to fp32's; see Performance)",
        stages=("embed",),
        choices=("fp32", "int8"),
    )
    features: str | None = setting(
        None,
        "your own vectors instead of the model's: Parquet (a `filename` or `id` column and a "
        "list column) or `.npy` with `FILE.ids.txt` beside it (see Bring your own embeddings)",
        stages=("embed", "cluster", "tiles"),
        metavar="FILE",
    )
    batch_size: int = setting(
        8,
        "images per model batch (small batches measured fastest on this CPU)",
        stages=("embed",),
        affects=False,
        check=positive,
    )
    shard_size: int = setting(
        1024,
        "images per resumable embedding shard",
        stages=("embed",),
        affects=False,
        check=positive,
    )
    # -- clean -------------------------------------------------------------------------------
    near_cosine: float = setting(
        0.5,
        "CNN cosine similarity below which two images are never compared as near duplicates",
        stages=("clean",),
        check=within(0, 1, open_low=True),
    )
    near_layout: float = setting(
        0.75,
        "share of a picture's regions that must match its copy's (graphics: all of them)",
        stages=("clean",),
        check=within(0, 1, open_low=True),
    )
    keep_near_duplicates: bool = setting(
        False, "flag near duplicates but keep them on the map", stages=("clean",)
    )
    # -- reduce ------------------------------------------------------------------------------
    pca_dims: int = setting(50, "PCA dimensions before t-SNE", stages=("reduce",), check=positive)
    perplexity: float = setting(
        30.0,
        "t-SNE perplexity (lowered automatically for tiny sets)",
        stages=("reduce",),
        check=lambda v: None if v > 1 else "must be > 1",
    )
    reducer: str = setting(
        "tsne",
        "the 2-D layout: `tsne` (openTSNE) or `umap` (umap-learn, postermap[umap])",
        stages=("reduce",),
        choices=("tsne", "umap"),
    )
    umap_neighbors: int = setting(
        15,
        "UMAP's n_neighbors (local vs global structure)",
        stages=("reduce",),
        check=at_least(2),
    )
    umap_min_dist: float = setting(
        0.1,
        "UMAP's min_dist (how tightly it packs points)",
        stages=("reduce",),
        check=within(0, 1),
    )
    seed: int = setting(
        42,
        "seed for PCA, t-SNE, the grid and clustering",
        stages=("reduce", "grid", "cluster", "neighbours"),
    )
    # -- grid --------------------------------------------------------------------------------
    cell_aspect: str = setting(
        "auto",
        "cell width:height, e.g. `2:3`; `auto`: the median aspect of the images on the map "
        "rounded to a simple ratio (posters get 2:3 cells, emoji square ones)",
        stages=("grid",),
        check=lambda v: None if v == "auto" or _is_ratio(v) else "must be auto or W:H",
        metavar="W:H",
    )
    map_aspect: float = setting(
        1.6,
        "width/height of the whole mosaic in pixels (1.6 = a 16:10 screen)",
        stages=("grid",),
        check=within(0.2, 5.0),
    )
    grid_exact_max: int = setting(
        2000,
        "up to this many images the grid is solved exactly; above, the scalable solver",
        stages=("grid",),
        check=positive,
    )
    # -- cluster -----------------------------------------------------------------------------
    cluster_method: str = setting(
        "louvain",
        "`louvain` (communities of a kNN graph, scikit-network), `hdbscan` (fast-hdbscan) "
        "or `dbscan`",
        stages=("cluster",),
        choices=("louvain", "hdbscan", "dbscan"),
    )
    cluster_space: str = setting(
        "embedding",
        "cluster the `embedding` space (PCA of `cluster_features`: 32-d whitened for "
        "louvain, 30-d for hdbscan/dbscan) or the 2-D `layout`",
        stages=("cluster",),
        choices=("embedding", "layout"),
    )
    cluster_features: str = setting(
        "rmac",
        "features of the embedding space: `rmac` (regional max pooling of the model's "
        "last feature map, from the same pass; the features if the model has none) or "
        "`avg` (the features every other stage reads)",
        stages=("cluster",),
        choices=("rmac", "avg"),
    )
    cluster_cells: int = setting(
        4,
        "louvain: salient mid-level cells per image that link images sharing a small motif "
        "(0: link by the whole picture only)",
        stages=("cluster",),
        check=within(0, 8),
    )
    cluster_neighbours: int = setting(
        20,
        "louvain: links per image in the kNN graph",
        stages=("cluster",),
        check=within(2, 200),
    )
    cluster_density: float = setting(
        0.06,
        "louvain: link weight per pair of members a cluster needs to hold together "
        "(higher: smaller, purer clusters; the same meaning at any collection size)",
        stages=("cluster",),
        check=within(0, 1, open_low=True),
    )
    min_cluster_size: int = setting(
        10,
        "smallest cluster (louvain and HDBSCAN)",
        stages=("cluster",),
        check=positive,
    )
    hdbscan_selection: str = setting(
        "leaf",
        "`leaf` keeps tight tropes; `eom` (HDBSCAN's default) merges them into larger regions",
        stages=("cluster",),
        choices=("leaf", "eom"),
    )
    dbscan_eps: float = setting(
        1.0,
        "DBSCAN radius: in the layout in mean image spacings, in the embedding space in "
        "median distances to the `min_samples`-th neighbour",
        stages=("cluster",),
        check=within(0, 20, open_low=True),
    )
    dbscan_min_samples: int = setting(
        8,
        "DBSCAN core point count (also HDBSCAN's `min_samples`)",
        stages=("cluster",),
        check=positive,
    )
    # -- tiles -------------------------------------------------------------------------------
    cell_size: int = setting(
        128,
        "pixels of a cell's shorter side at full zoom (its shape: see cell_aspect)",
        stages=("tiles",),
        check=within(16, 1024),
        metavar="PX",
    )
    tile_quality: int = setting(
        85, "JPEG quality of the tiles", stages=("tiles",), check=within(1, 100)
    )
    background: str = setting(
        "#202124",
        "colour of empty cells and margins",
        stages=("tiles",),
        check=hex_colour,
        metavar="#RRGGBB",
    )
    arrange: str | None = setting(
        None,
        "also arrange the map by a column, e.g. `year`: a wall whose columns are its bins (or "
        "a category's values), each ordered by similarity; comma-separated for several",
        stages=("tiles",),
        check=lambda v: None if all(p.strip() for p in v.split(",")) else "must name columns",
        metavar="COLUMN",
    )

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            choices, check = f.metadata["choices"], f.metadata["check"]
            if value is None:
                continue
            if choices is not None and value not in choices:
                raise SettingsError(f"{f.name} must be one of {', '.join(choices)}, got {value!r}")
            problem = check(value) if check is not None else None
            if problem:
                raise SettingsError(f"{f.name} {problem}, got {value!r}")

    def subset(self, names: tuple[str, ...]) -> dict[str, Any]:
        """The values of ``names``, for a stage's fingerprint and marker."""
        return {name: getattr(self, name) for name in names}

    def replace(self, **changes: Any) -> Settings:
        """A copy with the given values (None = leave unchanged), validated."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_json(self) -> str:
        """The settings a workspace keeps (per-invocation ones such as ``ray`` left out)."""
        kept = {f.name: getattr(self, f.name) for f in fields(self) if f.metadata["remember"]}
        return json.dumps(kept, indent=2, sort_keys=True)

    def for_stage(self, stage: str) -> StageSettings:
        """The view of these settings that stage ``stage`` runs with."""
        return StageSettings(self, stage)

    @classmethod
    def from_mapping(cls, values: dict[str, Any], origin: str = "settings") -> Settings:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise SettingsError(
                f"{origin}: unknown setting(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(known))}"
            )
        types = setting_types()
        for name, value in values.items():
            expected = types[name]
            if value is not None and not _is_instance(value, expected):
                raise SettingsError(f"{origin}: {name} must be {expected.__name__}, got {value!r}")
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


class StageSettings:
    """The settings one stage may read: asking for any other one is a bug of that stage
    (its output would not depend on it through the fingerprint), so it raises."""

    def __init__(self, settings: Settings, stage: str) -> None:
        self._settings = settings
        self._stage = stage
        self._allowed = frozenset(stage_settings(stage, affecting_only=False))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in self._allowed:
            raise AttributeError(
                f"stage {self._stage!r} read setting {name!r}, which config.Settings does "
                f"not list as read by it: add {self._stage!r} to that setting's stages"
            )
        return getattr(self._settings, name)


def stage_settings(stage: str, affecting_only: bool = True) -> tuple[str, ...]:
    """Names of the settings ``stage`` reads (only those that change its output, unless
    ``affecting_only`` is False), in table order."""
    return tuple(
        f.name
        for f in fields(Settings)
        if stage in f.metadata["stages"] and (f.metadata["affects"] or not affecting_only)
    )


def cli_settings() -> list[dataclasses.Field]:
    """The settings that are CLI options (all but the positional source), in table order."""
    return [f for f in fields(Settings) if f.metadata["group"] != "argument"]


def setting_types() -> dict[str, type]:
    """Each setting's value type (``str | None`` -> ``str``)."""
    hints = typing.get_type_hints(Settings)
    out = {}
    for name, hint in hints.items():
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        out[name] = args[0] if args else hint
    return out


def option_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def settings_markdown() -> str:
    """The README's options table, generated from :class:`Settings`."""
    lines = [
        "| option | default | read by | meaning |",
        "|---|---|---|---|",
    ]
    for f in cli_settings():
        meta = f.metadata
        readers = ", ".join(meta["stages"]) + ("" if meta["affects"] else " (how only)")
        lines.append(
            f"| `{option_name(f.name)}` | {_shown_default(f.default)} | {readers} | "
            f"{meta['help']} |"
        )
    return "\n".join(lines)


def read_toml(path: Path, allowed: set[str] | None = None) -> dict[str, Any]:
    """A user-edited TOML file as a dict ({} if missing), with errors that name the file."""
    path = Path(path)
    if not path.exists():
        return {}
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise SettingsError(f"{path}: not valid TOML: {err}") from err
    except UnicodeDecodeError as err:
        raise SettingsError(f"{path}: not UTF-8 text: {err}") from err
    unknown = set(data) - allowed if allowed is not None else set()
    if unknown:
        raise SettingsError(
            f"{path}: unknown key(s) {', '.join(sorted(unknown))}; "
            f"expected: {', '.join(sorted(allowed or ()))}"
        )
    return data


def _is_ratio(value: str) -> bool:
    parts = value.split(":")
    return len(parts) == 2 and all(p.isdigit() and int(p) > 0 for p in parts)


def _shown_default(value: Any) -> str:
    if value is None or value is False:
        return "(off)"
    if isinstance(value, str):
        return f"`{value}`"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _is_instance(value: Any, expected: type) -> bool:
    if expected is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, expected)
