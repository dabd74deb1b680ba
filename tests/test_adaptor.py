"""The adaptor + discriminator detector end to end on real surface defects (Magnetic Tile), on a subset.

Fitted on every 4th training image and scored on every 3rd test image at 128 px with a short training
run (150 steps of 512 rows), so that it stays near a minute on 2 idle cores; the full measurement is
`python benchmarks/adaptor.py compare` (benchmarks/RESULTS.md). The floors are those of the other
detectors' integration test (well above a random scorer's 0.5 AUROC and about 0.15 PRO), not tuned.
It also checks that a fitted model saves and loads with the same scores and maps, bit for bit.
"""
import numpy as np

from anomaly_nb.layouts import load_layout
from anomaly_nb.metrics import metrics_table
from anomaly_nb.pipeline import build_model
from anomaly_nb.saving import load_model, save_model

FLOORS = dict(image_auroc=0.60, pixel_auroc=0.65, pro=0.30)


def test_adaptor_on_magnetic_tile_subset(magnetic_tile, effnet_weights, tmp_path, capsys):
    lay = load_layout(magnetic_tile, 0)
    train, test = lay.train[::4], lay.test[::3]
    model = build_model("tf_efficientnet_lite0", weights=effnet_weights, detector="adaptor", size=128, progress=False,
                        steps=150, batch=512).fit(train)
    pred = model.predict(test)
    masks = [m[v].reshape(1, -1) for m, v in zip(pred.masks, pred.valid)]
    maps = [a[v].reshape(1, -1) for a, v in zip(pred.maps, pred.valid)]
    table = metrics_table(pred.labels, pred.scores, masks, maps, pred.classes)
    with capsys.disabled():
        print(f"\nadaptor on a magnetic_tile subset ({len(train)} training, {len(test)} test images, 128 px, 150 steps of 512 rows), "
              f"fit {model.fit_s:.0f} s\n{table.round(3).to_string()}")
    row = table.loc["all"]
    for metric, floor in FLOORS.items():
        assert row[metric] > floor, f"adaptor: {metric} {row[metric]:.3f} below floor {floor}"
    save_model(model, tmp_path / "adaptor")
    again = load_model(tmp_path / "adaptor", progress=False).predict(test[:8])
    first = model.predict(test[:8])
    assert np.array_equal(again.scores, first.scores) and np.array_equal(again.maps, first.maps)
