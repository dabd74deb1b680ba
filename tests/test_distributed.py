"""Fit, predict and update on a local Dask cluster, checked against the single-process path on real images.

A `LocalCluster` of 2 single-threaded worker processes listens on loopback only (the address is asserted); the
data are small magnetic_tile subsets (40 good images to fit, 30 test images, 128 px) with the shared ImageNet weights
of tf_efficientnet_lite0. Skipped, with the reason, when the dask extra or the shared data are missing.
"""
import contextlib, csv, io, os, shutil, signal, time
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("distributed", reason='the dask extra is not installed: pip install "anomaly_nb[dask]"')

from anomaly_nb.cli import main as cli
from anomaly_nb.data import mvtec_samples
from anomaly_nb.distributed import DaskEngine, fit_model, predict_images, update_model, cmd_predict_dask, dask_options
from anomaly_nb.pipeline import AnomalyModel, ModelConfig, _as_samples
from anomaly_nb.saving import load_model, save_model
from anomaly_nb.statistics import moments_of
from anomaly_nb.thresholds import split_holdout

LOOPBACK = "tcp://127.0.0.1:"


@pytest.fixture(scope="module")
def engine():
    with DaskEngine(n_workers=2, threads_per_worker=1) as e:
        assert e.address.startswith(LOOPBACK), e.address
        workers = e.client.scheduler_info()["workers"]
        assert len(workers) == 2 and all(w.startswith(LOOPBACK) for w in workers), list(workers)
        yield e


@pytest.fixture(scope="module")
def data(magnetic_tile, effnet_weights, tmp_path_factory):
    s = mvtec_samples(magnetic_tile)
    return SimpleNamespace(train=[x.path for x in s["train"][::16]][:40], test=[x.path for x in s["test"][::22]][:30],
                           config=ModelConfig(weights=str(effnet_weights), size=128, device="cpu", progress=False),
                           tmp=tmp_path_factory.mktemp("distributed"))


@pytest.fixture(scope="module")
def single(data):
    "The single-process reference: PaDiM fitted with 10 % held out, saved."
    model = AnomalyModel(data.config).fit(data.train, holdout=0.1)
    save_model(model, data.tmp / "single")
    return model


def precision(W):
    W = W.astype(np.float64)
    return W @ np.swapaxes(W, -1, -2)


def rel(a, b):
    "Largest difference relative to the largest value."
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / np.abs(b).max())


def rows(folder):
    with open(folder / "scores.csv", newline="") as f: return list(csv.DictReader(f))


def files(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def reference(data, single, batch):
    "Single-process `anomaly-nb predict` of the test images, scoring `batch` images at a time."
    out = data.tmp / f"ref_{batch}"
    if not out.exists():
        with contextlib.redirect_stdout(io.StringIO()):
            assert cli(["predict", str(data.tmp / "single"), *map(str, data.test), "--score-batch", str(batch), "-q", "-o", str(out)]) == 0
    return out


def test_fit_equals_single_process(engine, data, single, capsys):
    dist = fit_model(data.train, data.tmp / "dist", data.config, engine, holdout=0.1, shard=8)
    fit_on, held = split_holdout(data.train, 0.1, data.config.seed)
    assert (dist.n_train, dist.threshold_info["n_holdout"]) == (single.n_train, single.threshold_info["n_holdout"]) == (len(fit_on), len(held))
    # the merged moments are those of all the training features (and, with resize='box' on tiles of many shapes, of a
    # crop of each, as `AnomalyModel.fit` cuts them), to float64 round-off
    fit_samples = _as_samples(fit_on)
    feats = single._extract(single._loader(fit_samples))
    assert single._adds_crops(fit_samples)  # the default geometry on tiles of many shapes
    feats = np.concatenate([feats, single._extract(single._loader(fit_samples, crop_seed=single.config.seed))])
    whole = moments_of(single._detector_input(feats))
    saved = load_model(data.tmp / "dist", progress=False).detector.stats_
    errs = {k: rel(getattr(saved, k), getattr(whole, k)) for k in ("mean", "scatter", "m3", "m4")}
    assert saved.n == whole.n == 2 * len(fit_on) and max(errs.values()) < 1e-11, errs
    # the detector's arrays (float32) and the scores
    d, s = dist.detector, single.detector
    mean_err, prec_err = rel(d.mean_, s.mean_), rel(precision(d.W_), precision(s.W_))
    a, b = load_model(data.tmp / "dist", progress=False).predict(data.test).scores, single.predict(data.test).scores
    score_err = float(np.abs(a / b - 1).max())
    with capsys.disabled():
        print(f"\nfit on 2 workers vs one process: moments {max(errs.values()):.1e}, mean {mean_err:.1e}, precision {prec_err:.1e}, "
              f"scores {score_err:.1e} (relative), threshold {dist.threshold:.6g} vs {single.threshold:.6g}")
    assert mean_err < 1e-6 and prec_err < 1e-5 and score_err < 1e-5
    assert abs(dist.threshold / single.threshold - 1) < 1e-5


def test_fold_threshold_equals_single_process(engine, data, capsys):
    "holdout=None: one part per fold merged on the driver, each fold scored on the workers by the others' statistics."
    local = AnomalyModel(data.config).fit(data.train, holdout=None)
    dist = fit_model(data.train, data.tmp / "dist_folds", data.config, engine, holdout=None, shard=8)
    a, b = dist.threshold_info, local.threshold_info
    assert (a["folds"], a["n_holdout"], dist.n_train) == (b["folds"], b["n_holdout"], local.n_train) == (5, 40, 40)
    score_err, mean_err = rel(a["holdout_scores"], b["holdout_scores"]), rel(dist.detector.mean_, local.detector.mean_)
    assert score_err < 1e-4 and mean_err < 1e-5 and abs(dist.threshold / local.threshold - 1) < 1e-4, (score_err, mean_err)
    assert load_model(data.tmp / "dist_folds", progress=False).threshold == dist.threshold
    with capsys.disabled():
        print(f"\nfold threshold on 2 workers vs one process: out-of-fold scores {score_err:.1e} (relative), "
              f"threshold {dist.threshold:.6g} vs {local.threshold:.6g}")

def test_gaussian_fit_equals_single_process(engine, data):
    config = data.config.replace(detector="gaussian")
    dist = fit_model(data.train[:16], data.tmp / "dist_gauss", config, engine, shard=5)
    single = AnomalyModel(config).fit(data.train[:16])
    assert rel(dist.detector.mean_, single.detector.mean_) < 1e-12
    assert rel(precision(dist.detector.W_), precision(single.detector.W_)) < 1e-9
    assert np.abs(dist.predict(data.test[:8]).scores / single.predict(data.test[:8]).scores - 1).max() < 1e-5


def test_predict_equals_single_process(engine, data, single, capsys):
    batches = []
    res = predict_images(data.tmp / "single", data.test, data.tmp / "pred", engine, batch=8, on_batch=lambda i, n, r: batches.append(r))
    ref = reference(data, single, 8)
    a, b = files(data.tmp / "pred"), files(ref)
    assert sorted(a) == sorted(b) and len(rows(ref)) == 30
    differ = [k for k in a if a[k] != b[k]]
    with capsys.disabled(): print(f"\npredict on 2 workers vs one process: {len(a) - len(differ)} of {len(a)} files byte-identical")
    assert not differ, differ  # same thread settings (one PyTorch thread per pass), same groups: bit for bit
    assert res["counts"]["written"] == 30 and len(res["pids"]) == 2, res  # both workers scored
    for pid in res["pids"]:  # each worker loaded the model once, before its first batch, and never again
        assert len({r["loads"] for r in batches if r["pid"] == pid}) == 1


def test_resume_across_engines(engine, data, single):
    ref = reference(data, single, 8)
    out = data.tmp / "resume_a"  # begun on the cluster, finished in one process
    predict_images(data.tmp / "single", data.test[:10], out, engine, batch=8)
    with contextlib.redirect_stdout(io.StringIO()) as o:
        assert cli(["predict", str(data.tmp / "single"), *map(str, data.test), "--score-batch", "8", "-q", "-o", str(out)]) == 0
    assert "(10 already done" in o.getvalue()
    out2 = data.tmp / "resume_b"  # begun in one process, finished on the cluster
    with contextlib.redirect_stdout(io.StringIO()):
        assert cli(["predict", str(data.tmp / "single"), *map(str, data.test[:10]), "--score-batch", "8", "-q", "-o", str(out2)]) == 0
    assert predict_images(data.tmp / "single", data.test, out2, engine, batch=8)["counts"]["resumed"] == 10
    for folder in (out, out2):  # resumed in other groups: the same rows, scores and maps to float32 rounding (14_distributed)
        got, want = rows(folder), rows(ref)
        assert [{k: v for k, v in r.items() if k != "score"} for r in got] == [{k: v for k, v in r.items() if k != "score"} for r in want]
        np.testing.assert_allclose([float(r["score"]) for r in got], [float(r["score"]) for r in want], rtol=1e-5)
        for r in want:
            np.testing.assert_allclose(np.load(folder / r["map"]), np.load(ref / r["map"]), rtol=1e-5, atol=1e-5)


def test_killed_worker(engine, data, single, capsys):
    "A worker killed in the middle of the run: its batches run again elsewhere, every image is listed exactly once."
    killed = []
    def kill_one(done, total, result):
        if killed: return
        busy = [w for w, keys in engine.client.processing().items() if keys] or list(engine.client.scheduler_info()["workers"])
        pid = engine.client.run(os.getpid, workers=busy[:1])[busy[0]]  # a worker in the middle of a batch
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)
    out = data.tmp / "killed"
    res = predict_images(data.tmp / "single", data.test, out, engine, batch=2, on_batch=kill_one)
    got, ref = rows(out), rows(reference(data, single, 8))
    assert killed and sorted(r["image"] for r in got) == sorted(map(str, data.test)) and len(got) == 30  # each image exactly once
    assert [r["image"] for r in got] == [r["image"] for r in ref]  # in input order
    assert [r["map"] for r in got] == [r["map"] for r in ref] and [r["verdict"] for r in got] == [r["verdict"] for r in ref]
    scores = np.array([float(r["score"]) for r in got]) / np.array([float(r["score"]) for r in ref])
    assert np.abs(scores - 1).max() < 1e-5
    assert all((out / r["map"]).is_file() and (out / r["overlay"]).is_file() for r in got)
    assert not list(out.rglob("*.part")) and not (out / ".anomaly_nb.lock").exists()
    new = set(res["pids"]) - {killed[0]}
    with capsys.disabled():
        print(f"\nkilled worker {killed[0]} after batch 1 of 15: batches per process {res['pids']}; 30 rows, each image once")
    assert new, res["pids"]
    engine.client.wait_for_workers(2, timeout=120)  # the nanny restarted it


def test_update_equals_refit(engine, data, capsys):
    fit_model(data.train[:24], data.tmp / "u24", data.config, engine, shard=8)
    upd = update_model(data.tmp / "u24", data.train[24:], out=data.tmp / "u40", engine=engine, shard=8, device="cpu")
    full = AnomalyModel(data.config).fit(data.train)
    assert upd.n_train == 40 and load_model(data.tmp / "u40", progress=False).detector.stats_.n == 80  # 40 images and their crops
    prec_err = rel(precision(upd.detector.W_), precision(full.detector.W_))
    score_err = float(np.abs(upd.predict(data.test).scores / full.predict(data.test).scores - 1).max())
    with capsys.disabled(): print(f"\nupdate 24 + 16 vs refit on 40: precision {prec_err:.1e}, scores {score_err:.1e} (relative)")
    assert rel(upd.detector.mean_, full.detector.mean_) < 1e-6 and prec_err < 1e-5 and score_err < 1e-5


def test_cli_on_a_running_scheduler(engine, data, single):
    "`anomaly-nb predict/fit/update --dask ADDRESS` connect to the cluster's scheduler (loopback) and give the single-process results."
    assert engine.address.startswith(LOOPBACK)
    with contextlib.redirect_stdout(io.StringIO()) as o:
        assert cli(["predict", str(data.tmp / "single"), *map(str, data.test[:8]), "-o", str(data.tmp / "cli"), "-q",
                    "--score-batch", "8", "--dask", engine.address]) == 0
    assert o.getvalue().startswith("scored 8 images"), o.getvalue()
    assert rows(data.tmp / "cli") == rows(reference(data, single, 8))[:8]
    # --threshold reaches the workers' writer: every verdict against the given score
    with contextlib.redirect_stdout(io.StringIO()):
        assert cli(["predict", str(data.tmp / "single"), *map(str, data.test[:4]), "-o", str(data.tmp / "cli_t"), "-q",
                    "--threshold", "0", "--dask", engine.address]) == 0
    assert {r["verdict"] for r in rows(data.tmp / "cli_t")} == {"defect"}
    # fit on 24 images, then update with 16 more: the model fitted on all 40 (as test_update_equals_refit, through the CLI)
    w, common = str(data.config.weights), ["--device", "cpu", "-q", "--dask", engine.address]
    first = data.tmp / "first24"; first.mkdir()
    for f in data.train[:24]: shutil.copy(f, first)
    with contextlib.redirect_stdout(io.StringIO()) as o:
        assert cli(["fit", str(first), "-o", str(data.tmp / "cli_fit"), "--weights", w, "--size", "128", "--holdout", "0", *common]) == 0
        assert cli(["update", str(data.tmp / "cli_fit"), *map(str, data.train[24:]), "-o", str(data.tmp / "cli_up"), *common]) == 0
    assert "fitted on 24 images" in o.getvalue() and "fitted on 40 images" in o.getvalue(), o.getvalue()
    full = AnomalyModel(data.config).fit(data.train)
    assert rel(load_model(data.tmp / "cli_up", progress=False).detector.mean_, full.detector.mean_) < 1e-6
