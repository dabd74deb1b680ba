"""An exported model scores like the torch pipeline on real defects (issue #20).

The default model (PaDiM, tf_efficientnet_lite0 with ImageNet weights, 320 px, aspect ratio kept,
resize='box': the network on each image's own box) is fitted on Magnetic Tile's train/good with a
threshold from 10 % held out, saved, exported to ONNX from its folder (a graph with free box sizes,
whose convolutions pad 'same'), and both score all 673 test images, of many box sizes: the exported
graph (run by ONNX Runtime through `anomaly_nb.runtime`, decoding, resizing and placing the grids
included) must give the torch pipeline's image scores within a relative 1e-4, its maps within 1e-4 of
the largest map value, and the same verdict at the threshold for every image. The one-Gaussian
detector is checked the same way on a subset with padded inputs (the other graph, `ExportGraph`), and
the torch-free command `anomaly-nb-deploy predict` on a few files. Skipped, with the reason, when the
shared data or weights are absent. About 5 minutes on 2 cores (the box graph's export takes 2-3).
"""
import csv

import numpy as np
import pytest

from anomaly_nb.data import mvtec_samples
from anomaly_nb.export import export_model
from anomaly_nb.images import to_original
from anomaly_nb.pipeline import build_model
from anomaly_nb.runtime import OnnxModel, main as deploy_main
from anomaly_nb.saving import save_model, model_sha256

SCORE_RTOL = 1e-4  # the bound on image scores
MAP_TOL = 1e-4     # maps: largest absolute difference, as a share of the largest map value


@pytest.fixture(scope="module")
def exported(magnetic_tile, effnet_weights, tmp_path_factory):
    "(torch model, its saved folder, its ONNX export) for the default configuration."
    tmp = tmp_path_factory.mktemp("export")
    model = build_model("tf_efficientnet_lite0", weights=effnet_weights, progress=False, device="cpu")
    model.fit(magnetic_tile, holdout=0.1)
    folder = save_model(model, tmp / "padim")
    return model, folder, export_model(folder, tmp / "padim.onnx")


def compare(model, onnx_file, samples, capsys, what):
    "Score `samples` both ways; return (max relative score difference, max map difference / max map, verdicts equal)."
    pred = model.predict(samples)
    onnx = OnnxModel(onnx_file, threads=2)
    got = list(onnx.score_files([s.path for s in samples], batch_size=8, keep_images=False))
    assert [g.path for g in got] == [s.path for s in pred.samples]
    scores = np.array([g.score for g in got])
    rel = float(np.max(np.abs(scores - pred.scores) / np.abs(pred.scores)))
    top = float(pred.maps.max())
    map_diff = max(float(np.abs(g.amap - m).max()) for g, m in zip(got, pred.maps)) / top
    assert all(np.array_equal(g.valid, v) for g, v in zip(got, pred.valid))  # the same resizing and padding
    if model.config.resize == "box": assert len({(int(v.any(1).sum()), int(v.any(0).sum())) for v in pred.valid}) > 5  # many box sizes
    orig = max(float(np.abs(to_original(g.amap, g.orig_size, g.valid) - to_original(m, s, v)).max())
               for g, m, s, v in zip(got[:20], pred.maps, pred.orig_sizes, pred.valid)) / top
    thr = onnx.threshold
    same = bool(np.array_equal(scores > thr, pred.scores > thr)) if thr is not None else None
    margin = float(np.min(np.abs(pred.scores - thr) / thr)) if thr is not None else float("nan")
    with capsys.disabled():
        print(f"\n{what}: {len(scores)} images; max relative score difference {rel:.2g}; max map difference "
              f"{map_diff:.2g} of the largest map value ({orig:.2g} at original size, 20 images); threshold {thr}: "
              f"verdicts identical {same} ({int((pred.scores > thr).sum()) if thr is not None else '-'} defects; "
              f"closest score {margin:.2g} from it, relative)")
    return rel, map_diff, same


def test_exported_padim_equals_torch_on_all_test_images(exported, magnetic_tile, capsys):
    model, folder, onnx_file = exported
    samples = mvtec_samples(magnetic_tile)["test"]
    assert len(samples) == 673
    rel, map_diff, same = compare(model, onnx_file, samples, capsys, "PaDiM (default, resize='box'), exported")
    assert rel <= SCORE_RTOL and map_diff <= MAP_TOL and same
    meta = OnnxModel(onnx_file).meta
    assert meta["source"]["model_sha256"] == model_sha256(folder) and meta["threshold"] == model.threshold
    assert meta["config"] == model.config.to_dict()


def test_exported_gaussian_equals_torch(magnetic_tile, effnet_weights, tmp_path, capsys):
    cat = mvtec_samples(magnetic_tile)
    model = build_model("tf_efficientnet_lite0", weights=effnet_weights, detector="gaussian", resize="pad", progress=False,
                        device="cpu")  # the padded graph with the real backbone
    model.fit(cat["train"][::8])  # 84 images: the Gaussian of 86k patches
    model.threshold = float(np.median(model.predict(cat["train"][1::40]).scores))  # a threshold among normal scores
    onnx_file = export_model(model, tmp_path / "gaussian.onnx")
    rel, map_diff, same = compare(model, onnx_file, cat["test"][::12], capsys, "Gaussian, exported")
    assert rel <= SCORE_RTOL and map_diff <= MAP_TOL and same


def test_deploy_command_writes_what_torch_predicts(exported, magnetic_tile, tmp_path, capsys):
    model, folder, onnx_file = exported
    samples = mvtec_samples(magnetic_tile)["test"][::60]
    pred = model.predict(samples)
    assert deploy_main(["predict", str(onnx_file), *[str(s.path) for s in samples], "-o", str(tmp_path / "out"),
                        "--threads", "2"]) == 0
    rows = list(csv.DictReader(open(tmp_path / "out" / "scores.csv")))
    assert [r["image"] for r in rows] == [str(s.path) for s in samples]
    for r, score, amap, size, valid in zip(rows, pred.scores, pred.maps, pred.orig_sizes, pred.valid):
        assert abs(float(r["score"]) - score) <= SCORE_RTOL * score
        assert r["verdict"] == ("defect" if score > model.threshold else "ok")
        saved, want = np.load(tmp_path / "out" / r["map"]), to_original(amap, size, valid)
        assert saved.shape == want.shape and np.abs(saved - want).max() <= MAP_TOL * want.max()
        assert (tmp_path / "out" / r["overlay"]).is_file()
