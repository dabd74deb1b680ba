"""Scores of normal images must not follow their shape (issue #19, part 1), measured with real ImageNet weights.

The orientation AUROC is the AUROC of normal images' scores against portrait/landscape: 0.5 means the score says nothing
about the shape. With padding (`resize='pad'`, the default) it was 0.99 on the demo data and 0.431 on magnetic_tile;
with `resize='box'` 0.426 and 0.573 (`benchmarks/orientation.py`, RESULTS.md "round three"). The band below is the
issue's goal, 0.5 ± 0.1; the image AUROC floor on magnetic_tile is a point or two below the measured 0.953, set once.
"""
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from anomaly_nb.data import make_synthetic_category
from anomaly_nb.layouts import load_layout
from anomaly_nb.pipeline import build_model

BAND = (0.4, 0.6)


def orientation_auroc(pred) -> tuple[float, int, int]:
    "AUROC of the normal images' scores against portrait (square images left out), and how many of each."
    good = pred.labels == 0
    h, w = pred.orig_sizes[good, 0], pred.orig_sizes[good, 1]
    keep = h != w
    tall, scores = (h > w)[keep], pred.scores[good][keep]
    return roc_auc_score(tall, scores), int(tall.sum()), int((~tall).sum())


def test_box_scores_ignore_shape_on_demo_data(effnet_weights, tmp_path, capsys):
    "The demo's generator: 58 of 60 training images are landscape; normal images of four more seeds are scored."
    cats = [make_synthetic_category(tmp_path / f"s{k}", seed=k) for k in range(5)]
    model = build_model("tf_efficientnet_lite0", weights=effnet_weights, resize="box", progress=False).fit(cats[0])
    goods = [s for c in cats[1:] for lay in [load_layout(c, 0)] for s in lay.train + lay.test if s.label == 0]
    auc, n_tall, n_wide = orientation_auroc(model.predict(goods))
    with capsys.disabled(): print(f"\ndemo data, resize='box': orientation AUROC {auc:.3f} ({n_tall} portrait, {n_wide} landscape)")
    assert n_tall >= 15 and n_wide >= 100
    assert BAND[0] <= auc <= BAND[1], f"orientation AUROC {auc:.3f} outside {BAND}"


def test_box_scores_ignore_shape_on_magnetic_tile(magnetic_tile, effnet_weights, capsys):
    model = build_model("tf_efficientnet_lite0", weights=effnet_weights, resize="box", progress=False)
    assert model._adds_crops(load_layout(magnetic_tile, 0).train)  # tiles of many shapes: crops are added
    table, pred = model.fit(magnetic_tile).evaluate(magnetic_tile)
    auc, n_tall, n_wide = orientation_auroc(pred)
    with capsys.disabled():
        print(f"\nmagnetic_tile, resize='box': orientation AUROC {auc:.3f} ({n_tall} portrait, {n_wide} landscape)\n"
              f"{table[['image_auroc', 'pixel_auroc', 'pro']].round(3).to_string()}")
    assert BAND[0] <= auc <= BAND[1], f"orientation AUROC {auc:.3f} outside {BAND}"
    row = table.loc["all"]
    for metric, floor in dict(image_auroc=0.93, pixel_auroc=0.84, pro=0.74).items():
        assert row[metric] > floor, f"{metric} {row[metric]:.3f} below floor {floor}"


def test_box_model_exports_and_scores_as_torch(magnetic_tile, effnet_weights, tmp_path):
    "The real backbone (its convolutions pad 'same') exported with free box sizes gives the torch pipeline's scores and maps."
    import time
    from anomaly_nb.data import mvtec_samples
    from anomaly_nb.export import export_model
    from anomaly_nb.images import to_original
    from anomaly_nb.runtime import OnnxModel
    cat = mvtec_samples(magnetic_tile)
    model = build_model("tf_efficientnet_lite0", weights=effnet_weights, resize="box", progress=False).fit(cat["train"][::11])
    t0 = time.perf_counter()
    exported = OnnxModel(export_model(model, tmp_path / "box.onnx"), threads=2)
    print(f"\nexported a resize='box' model in {time.perf_counter() - t0:.0f} s")
    test = cat["test"][::23]
    pred = model.predict(test)
    assert len({(int(v.any(1).sum()), int(v.any(0).sum())) for v in pred.valid}) > 5  # many box sizes
    got = list(exported.predict_files([s.path for s in test], batch_size=4))
    scores = np.array([s for _, s, *_ in got])
    assert np.allclose(scores, pred.scores, rtol=1e-4), np.abs(scores / pred.scores - 1).max()
    for i, (_, _, amap, _) in enumerate(got):
        want = to_original(pred.maps[i], pred.orig_sizes[i], pred.valid[i])
        assert np.abs(amap - want).max() <= 1e-4 * want.max()
