"""Predict and fit on a local Dask cluster against one process; the cost of the merge; kNN's coreset of coresets.

    python benchmarks/distributed.py [--images 256] [--repeats 3] [--workers 1 2] [--no-knn] [--fit-holdout none]

The default model (PaDiM, tf_efficientnet_lite0 with the shared ImageNet weights, the default input size) is fitted on magnetic_tile's
667 train/good images in this process, then:

1. predict: images/s writing maps, overlays and scores.csv for N test images (cycled), median of R runs into fresh
   folders: in one process (the loop of `anomaly-nb predict`: `predict_stream` + `PredictionWriter`, model loaded), and
   with `distributed.predict_images` on a `LocalCluster` of 1 and 2 single-threaded workers (loopback), warmed first
   (each worker has loaded the model); the rounds interleave the three, so that a shared machine's load falls on all. CPU seconds per image count this process and the workers (`process_time`), so
   the cluster's overhead per image is the difference with one process. The one-off costs (cluster start, the model's
   load on a worker) and the latency of an empty task are reported apart.
2. fit: `AnomalyModel.fit` on the 667 images in one process against `distributed.fit_model` on each cluster (shards of
   32 images, no held-out images), interleaved rounds, and how far the results are apart. With `--fit-holdout none`
   both fits set the threshold from out-of-fold scores of all the images (5 folds, the command line's default): the
   thresholds are compared too.
3. merge: one `Moments.merge` of two default-size parts (a matrix per grid position: 1,600 positions at 320 px), a
   part's pickled size, and `fit_moments` (an eigendecomposition per position) from the merged moments.
4. kNN (128 px, coreset bank of 10,000): one coreset in one process against the coreset of per-shard coresets on 2
   workers: the coverage (distance from a sample of 20,000 training patches to their nearest bank vector: what the
   greedy coreset minimises), image AUROC on the 673 test images, and the rank correlation of the two models' scores.

Prints markdown tables. The machine is shared: run it with `nice` and read the ratios more than the absolute values.
"""
import argparse, atexit, os, pickle, shutil, statistics, sys, tempfile, time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path = [p for p in sys.path if Path(p or '.').resolve() != HERE]  # this file would hide the `distributed` package

import numpy as np

SHARED = Path(os.environ.get('ANOMALY_NB_SHARED', HERE.parent.parent / 'shared'))


def cpu_now(engine=None):
    "CPU seconds used so far by this process (and the engine's workers)."
    t = time.process_time()
    if engine is not None: t += sum(engine.client.run(time.process_time).values())
    return t


def predict_single(model, images, out):
    "The loop of `anomaly-nb predict`, with the model already loaded."
    from anomaly_nb.outputs import PredictionWriter
    with PredictionWriter(out, model.threshold, model_id=model.source_sha256) as w:
        for chunk in model.predict_stream(images):
            for i, s in enumerate(chunk.samples):
                w.write(s.path, float(chunk.scores[i]), chunk.maps[i], chunk.valid[i], tuple(chunk.orig_sizes[i]))


def timed(run, repeats, engine=None):
    "Median wall seconds and CPU seconds of `run(i)` over `repeats` runs."
    walls, cpus = [], []
    for i in range(repeats):
        c0, t0 = cpu_now(engine), time.perf_counter()
        run(i)
        walls.append(time.perf_counter() - t0); cpus.append(cpu_now(engine) - c0)
    return statistics.median(walls), statistics.median(cpus)


def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / np.abs(b).max())


def precision(W):
    W = W.astype(np.float64)
    return W @ np.swapaxes(W, -1, -2)


def noop(x): return x


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--data', type=Path, default=SHARED / 'data' / 'magnetic_tile' / 'magnetic_tile')
    p.add_argument('--weights', type=Path, default=SHARED / 'weights' / 'tf_efficientnet_lite0.in1k.safetensors')
    p.add_argument('--images', type=int, default=256, help='test images to predict per run (cycled)')
    p.add_argument('--repeats', type=int, default=3, help='predict rounds (single process and each cluster in turn)')
    p.add_argument('--fit-repeats', type=int, default=2, help='fit rounds')
    p.add_argument('--workers', type=int, nargs='+', default=[1, 2])
    p.add_argument('--no-knn', dest='knn', action='store_false')
    p.add_argument('--train', type=int, default=None, help='fit on the first N train/good images only (a quick check)')
    p.add_argument('--fit-holdout', choices=['0', 'none'], default='0', help="the fits' threshold: none (0) or from 5 folds (none)")
    a = p.parse_args()
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    from anomaly_nb.data import mvtec_samples
    from anomaly_nb.distributed import DaskEngine, LocalEngine, fit_model, predict_images
    from anomaly_nb.pipeline import AnomalyModel, ModelConfig
    from anomaly_nb.saving import save_model, load_model
    work = Path(tempfile.mkdtemp(prefix='distributed_bench_'))
    atexit.register(shutil.rmtree, work, True)  # removed however the run ends
    cat = mvtec_samples(a.data)
    train, test = cat['train'][:a.train], cat['test']
    images = [test[i % len(test)].path for i in range(a.images)]
    config = ModelConfig(weights=str(a.weights), device='cpu', progress=False)
    print(f"magnetic_tile: {len(train)} train/good, {len(test)} test images; {os.cpu_count()} CPU cores; load average {os.getloadavg()[0]:.1f} "
          f"at the start; work folder {work}\n")

    single = AnomalyModel(config).fit(train)
    save_model(single, work / 'model')
    loaded = load_model(work / 'model', progress=False)
    ref_scores = single.predict(test[:64]).scores
    engines, one_off = {}, {}
    for n in a.workers:  # every cluster started and warmed first: the rounds below interleave them with the single process
        t0 = time.perf_counter()
        engines[n] = DaskEngine(n_workers=n, threads_per_worker=1)
        start = time.perf_counter() - t0
        assert engines[n].address.startswith('tcp://127.0.0.1:'), engines[n].address
        t0 = time.perf_counter()
        predict_images(work / 'model', images[:2 * n], work / f'warm_{n}', engines[n], batch=1)  # every worker loads the model
        warm = time.perf_counter() - t0
        t0 = time.perf_counter()
        for f in [engines[n].submit(noop, i) for i in range(200)]: engines[n].result(f)
        one_off[n] = f'start {start:.1f} s, first batch per worker (model load) {warm:.1f} s, empty task {1e3 * (time.perf_counter() - t0) / 200:.1f} ms'
    runs = {k: [] for k in ['single', *a.workers]}
    for r in range(a.repeats):
        runs['single'].append(timed(lambda i: predict_single(loaded, images, work / f'single_{r}'), 1))
        for n, e in engines.items(): runs[n].append(timed(lambda i: predict_images(work / 'model', images, work / f'dask{n}_{r}', e), 1, e))
    med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in runs.items()}
    predict_rows = [('one process (`anomaly-nb predict`)', a.images / med['single'][0], 1e3 * med['single'][1] / a.images, '')]
    predict_rows += [(f'Dask LocalCluster, {n} worker{"s" * (n > 1)} x 1 thread', a.images / med[n][0], 1e3 * med[n][1] / a.images, one_off[n])
                     for n in a.workers]
    fits, errs, holdout = {k: [] for k in ['single', *a.workers]}, {}, (None if a.fit_holdout == 'none' else 0.0)
    for r in range(a.fit_repeats):
        t0 = time.perf_counter(); one = AnomalyModel(config).fit(train, holdout=holdout); fits['single'].append(time.perf_counter() - t0)
        for n, e in engines.items():
            t0 = time.perf_counter(); dist = fit_model(train, work / f'dist_model_{n}', config, e, holdout=holdout); fits[n].append(time.perf_counter() - t0)
            d, s = dist.detector, single.detector
            errs[n] = (f"mean {rel(d.mean_, s.mean_):.0e}, precision {rel(precision(d.W_), precision(s.W_)):.0e}, "
                   f"scores {np.abs(dist.predict(test[:64]).scores / ref_scores - 1).max():.0e}")
            if holdout is None:
                errs[n] += (f"; out-of-fold scores {rel(dist.threshold_info['holdout_scores'], one.threshold_info['holdout_scores']):.0e}, "
                            f"threshold {dist.threshold:.6g} vs {one.threshold:.6g}")
    fit_single = statistics.median(fits['single'])
    fit_rows = [('one process (`AnomalyModel.fit`)', fit_single, '', '')]
    fit_rows += [(f'Dask LocalCluster, {n} worker{"s" * (n > 1)}', statistics.median(fits[n]), f'{fit_single / statistics.median(fits[n]):.2f}', errs[n])
                 for n in a.workers]
    merged = d.stats_
    if a.knn: knn = knn_comparison(engines[max(a.workers)], train, test, config, work)
    for e in engines.values(): e.close()

    print(f"## Predict: {a.images} images of magnetic_tile, maps + overlays + scores.csv written (median of {a.repeats} interleaved rounds)\n")
    print('| where | images/s | CPU ms per image | one-off costs |\n|---|---|---|---|')
    for r in predict_rows: print(f'| {r[0]} | {r[1]:.1f} | {r[2]:.1f} | {r[3]} |')
    how = 'threshold from 5 folds' if holdout is None else 'no threshold'
    print(f"\n## Fit: PaDiM on {len(train)} images (shards of 32, {how}; median of {a.fit_repeats} interleaved rounds)\n")
    print('| where | seconds | speed-up | distance to the one-process fit (relative) |\n|---|---|---|---|')
    for r in fit_rows: print(f'| {r[0]} | {r[1]:.1f} | {r[2]} | {r[3]} |')

    from anomaly_nb.statistics import PositionalGaussianDetector
    t0 = time.perf_counter(); merged.merge(merged); merge_s = time.perf_counter() - t0
    t0 = time.perf_counter(); blob = pickle.dumps(merged, protocol=5); pickle_s = time.perf_counter() - t0
    P, d = merged.shape
    t0 = time.perf_counter(); PositionalGaussianDetector().fit_moments(merged, d); fitm_s = time.perf_counter() - t0
    print(f"\n## Merge ({P:,} positions x {d} channels, float64)\n")
    print(f"| step | value |\n|---|---|\n| one part, pickled | {len(blob) / 2**20:.0f} MB |\n| pickling it | {pickle_s:.2f} s |\n"
          f"| one `Moments.merge` | {merge_s:.2f} s |\n| `fit_moments` from the merged moments ({P:,} eigh) | {fitm_s:.2f} s |")
    if a.knn:
        print(f"\n## kNN: one coreset vs a coreset of per-shard coresets (128 px, bank 10,000)\n")
        print('| bank | fit s | coverage: mean / p99 / max distance of 20,000 training patches | image AUROC | Spearman with one process |')
        print('|---|---|---|---|---|')
        for r in knn: print('| ' + ' | '.join(r) + ' |')
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end")


def knn_comparison(engine, train, test, config, work):
    "Rows of the kNN table: one process and the cluster."
    import faiss
    from scipy.stats import spearmanr
    from sklearn.metrics import roc_auc_score
    from anomaly_nb.distributed import fit_model
    from anomaly_nb.pipeline import AnomalyModel, to_rows
    cfg = config.replace(size=128, detector='knn', options=dict(bank='coreset', max_bank=10_000))
    t0 = time.perf_counter(); one = AnomalyModel(cfg).fit(train); t_one = time.perf_counter() - t0
    t0 = time.perf_counter(); dist = fit_model(train, work / 'knn_dist', cfg, engine); t_dist = time.perf_counter() - t0
    feats = one.extractor.extract(one._loader(train), progress=False)
    rows = to_rows(feats)
    sample = rows[np.random.default_rng(0).choice(len(rows), min(20_000, len(rows)), replace=False)]
    labels = np.array([s.label for s in test])
    out, scores = [], {}
    for name, m, t in (('one coreset, one process (parts of 20,000 rows)', one, t_one), ('coreset of shard coresets, 2 workers', dist, t_dist)):
        bank = m.detector.bank_
        d = np.sqrt(_nn(bank, sample))
        scores[name] = m.predict(test).scores
        out.append([f'{name} ({len(bank):,} vectors)', f'{t:.1f}', f'{d.mean():.3f} / {np.quantile(d, 0.99):.3f} / {d.max():.3f}',
                    f'{roc_auc_score(labels, scores[name]):.3f}'])
    rho = spearmanr(*scores.values()).correlation
    out[0].append('1'); out[1].append(f'{rho:.3f}')
    return out


def _nn(bank, queries):
    "Squared distance from each query to its nearest bank vector (exact)."
    import faiss
    index = faiss.IndexFlatL2(bank.shape[1]); index.add(np.ascontiguousarray(bank, np.float32))
    return index.search(np.ascontiguousarray(queries, np.float32), 1)[0][:, 0].clip(0)


if __name__ == '__main__': main()
