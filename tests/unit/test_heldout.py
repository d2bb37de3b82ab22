"""The held-out evaluation: metrics on a hand-made catalog whose answers are worked out
by hand, and each generator's labels.csv against the files it wrote (tiny sizes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import adjusted_rand_score

from tests.heldout import SETS, TUNING, missing_sources
from tests.heldout.evaluate import evaluate, join
from tests.heldout.labels import COLUMNS, ROLES, Label, read_labels

L = Label


def _labels() -> list[Label]:
    return [
        L("A.png", "keep", kind="poster"),
        L("A-near.jpg", "near_duplicate", "A.png", kind="near:jpeg"),
        L("A-copy.png", "duplicate", "A.png", kind="exact:bytes"),
        L("B.png", "keep", kind="poster"),
        L("B-big.png", "near_duplicate", "B.png", kind="near:resize"),
        L("C.png", "keep", kind="poster"),
        L("C-crop.png", "near_duplicate", "C.png", kind="near:crop"),
        *(L(f"T{i}.png", "keep", trope="t", kind="trope:large") for i in range(1, 5)),
        *(L(f"U{i}.png", "keep", trope="u", kind="trope:small") for i in range(1, 4)),
        L("S1.png", "boring", kind="boring:solid"),
        L("S2.png", "boring", kind="boring:template"),
        L("S3.png", "boring", kind="boring:template"),
        L("K1.png", "keep", kind="keeper:small-object"),
    ]


def _row(path, status="ok", dup=None, cluster=-1, id_=None) -> dict:
    return {
        "id": id_ or f"id-{path}",
        "path": path,
        "status": status,
        "reason": f"{status}: why",
        "duplicate_of": dup,
        "cluster": cluster if status == "ok" else None,
    }


def _catalog() -> list[dict]:
    """What a run might say: the byte copy shares its original's id (content hash); B is
    flagged as a copy of its larger variant (the kept one); C's crop is missed; trope
    sibling T2 is wrongly merged into T1; S2 is a near duplicate of S3, which stays; the
    small keeper K1 is called boring. Clusters: 0 = {A, T1, T3}, 1 = {U1, U2, T4}."""
    return [
        _row("A.png", cluster=0),
        _row("A-near.jpg", "near_duplicate", "id-A.png"),
        _row("A-copy.png", "duplicate", "id-A.png", id_="id-A.png"),
        _row("B.png", "near_duplicate", "id-B-big.png"),
        _row("B-big.png"),
        _row("C.png"),
        _row("C-crop.png"),
        _row("T1.png", cluster=0),
        _row("T2.png", "near_duplicate", "id-T1.png"),
        _row("T3.png", cluster=0),
        _row("T4.png", cluster=1),
        _row("U1.png", cluster=1),
        _row("U2.png", cluster=1),
        _row("U3.png", cluster=-1),
        _row("S1.png", "boring"),
        _row("S2.png", "near_duplicate", "id-S3.png"),
        _row("S3.png"),
        _row("K1.png", "boring"),
    ]


def test_metrics_on_a_hand_made_catalog() -> None:
    m = evaluate(join(_labels(), _catalog()))
    assert m["exact"]["precision"] == 1.0 and m["exact"]["recall"] == 1.0
    near = m["near"]
    # flagged (boring excluded): A-near right, B (as copy of B-big) right, T2 wrong
    assert near["flagged"] == 3 and near["precision"] == pytest.approx(2 / 3)
    assert near["recall"] == pytest.approx(2 / 3)  # C-crop missed
    assert near["boring_flagged_as_near"] == 1
    assert near["recognised"] == pytest.approx(2 / 3) and m["exact"]["recognised"] == 1.0
    assert near["recognised_by_kind"] == {
        "near:crop": [0, 1],
        "near:jpeg": [1, 1],
        "near:resize": [1, 1],
    }
    assert near["false_positives_by_kind"] == {"trope:large": 1}
    keep = m["keep"]
    # B is off the map but its picture is not (B-big); T2 and K1 are really gone
    assert (keep["removed"], keep["total"]) == (2, 11)
    assert keep["removed_as"] == {"near_duplicate": 1, "boring:boring": 1}
    assert keep["removed_by_kind"]["keeper:small-object"] == [1, 1]
    boring = m["boring"]
    assert boring["precision"] == 0.5 and boring["recall"] == pytest.approx(1 / 3)
    assert boring["false_alarms_by_kind"] == {"keeper:small-object": 1}
    tropes = m["tropes"]
    t, u = tropes["per_trope"]["t"], tropes["per_trope"]["u"]
    assert (t["recall"], t["purity"], t["cluster"], t["off_map"]) == (0.5, 2 / 3, 0, 1)
    assert (u["recall"], u["purity"], u["cluster"]) == (2 / 3, 2 / 3, 1)
    assert tropes["mean_recall"] == pytest.approx((0.5 + 2 / 3) / 2)
    # unclustered members are singletons, not one shared "noise" cluster
    expected = adjusted_rand_score(list("ttttuuu"), [0, -1, 0, 1, 1, 1, -2])
    assert tropes["ari"] == pytest.approx(expected)
    assert tropes["ari"] != pytest.approx(
        adjusted_rand_score(list("ttttuuu"), [0, -1, 0, 1, 1, 1, -1])
    )


def test_join_refuses_labels_missing_from_the_catalog() -> None:
    with pytest.raises(ValueError, match="not in the catalog"):
        join(_labels(), _catalog()[:-1])


def test_nothing_flagged_is_undefined_not_perfect() -> None:
    labels = [L("a.png", "keep"), L("b.png", "keep")]
    m = evaluate(join(labels, [_row("a.png"), _row("b.png")]))
    assert m["near"]["precision"] is None and m["near"]["recall"] is None
    assert m["keep"]["share"] == 0.0 and m["tropes"]["ari"] is None


def _pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


@pytest.mark.parametrize("name", list(SETS))
def test_generator_writes_consistent_labels(name: str, tmp_path: Path) -> None:
    gone = missing_sources(name)
    if gone:
        pytest.skip(
            f"sources of {name} not installed ({', '.join(gone)}): python -m tests.heldout fetch"
        )
    out = SETS[name](tmp_path / name, 0, 0.1)
    labels = read_labels(out)
    header = (out / "labels.csv").read_text().splitlines()[0].split(",")
    assert tuple(header[:5]) == COLUMNS[:5]
    names = [label.filename for label in labels]
    assert len(names) == len(set(names))
    files = {p.name for p in out.iterdir()} - {"labels.csv", "metadata.csv", "build.json"}
    assert files == set(names)
    by_name = {label.filename: label for label in labels}
    for label in labels:
        assert label.role in ROLES
        if label.role in ("duplicate", "near_duplicate"):
            assert by_name[label.duplicate_of].role == "keep", label
        else:
            assert label.duplicate_of == "", label
        assert not label.trope or label.role == "keep", label
        if label.role == "duplicate":
            a, b = out / label.filename, out / label.duplicate_of
            if label.kind == "exact:bytes":
                assert a.read_bytes() == b.read_bytes()
            else:
                assert np.array_equal(_pixels(a), _pixels(b)), label
    roles = {label.role for label in labels}
    if name == "openmoji":
        assert roles == {"keep"} and all(label.category for label in labels)
        assert any(label.kind.startswith("pair:") for label in labels)
    elif name not in TUNING:
        assert roles == set(ROLES)
        kinds = {label.kind.split(":")[0] for label in labels}
        assert {"near", "exact", "trope", "boring", "keeper", "poster"} <= kinds
        assert len({label.trope for label in labels if label.trope}) == 8
