"""What each detector costs and scores on one MVTec AD category, as one markdown table.

    python benchmarks/bench.py --data ../shared/data/magnetic_tile/magnetic_tile \\
        --weights ../shared/weights/tf_efficientnet_lite0.in1k.safetensors [--n-train 100 300 667] [--quick]

Run on demand; CI never runs it. How it measures:

- Features are extracted ONCE per configuration (backbone, layers, size, resize, weights) and cached as
  .npy files under --cache (default /tmp/perf-cache); every detector setting reuses them. Training
  subsets (--n-train) are the first n images of a seeded permutation of train/good.
- The backbone-only limit: test images decoded into memory first, then only the extractor's forward
  pass is timed, at batch sizes 1-32, one pass at a time on all threads and with the default number
  of passes in flight (`features.in_streams`); the fastest setting is the limit. The full pipeline
  on the same images: `AnomalyModel.predict` (decoding, backbone, detector, maps) at its defaults
  on the image files alone (as when predicting new parts; the ratio), with their masks read too
  (as `evaluate`), one stream, scored batch by batch, and at batch 32 with one stream (the defaults
  before this benchmark). All settings are interleaved in each of --repeats rounds and their
  medians compared; the ratio is the pipeline's share of the backbone's best throughput. The pipeline's
  detector is PaDiM unless --throughput-detector names others (the first runs in every pipeline variant,
  the others at the defaults, in the same rounds), e.g. `--throughput-detector padim 'padim:max_channels=100'`.
- Each detector setting runs in its OWN subprocess, which reads the cached features and reports its
  own `ru_maxrss`: peak RSS is therefore isolated per setting. It includes the cached training
  features and the Python/torch/FAISS runtime but not the backbone; the end-to-end rows (--e2e) run
  the real `AnomalyModel.fit` + `evaluate` in a subprocess and include everything.
- For cached-feature rows, fit_s = n_train x (seconds per training image of the cached extraction)
  + the detector's measured fit; score s/image = (seconds per test image of the cached extraction)
  + the detector's scoring and map time per image. The end-to-end rows measure both directly.
- Approximate or float16 banks report recall@1 against exact search over the same bank on a seeded
  sample of test patches.

Detector settings are `name:key=value,...` with the options of `anomaly_nb.detectors.get_detector`,
e.g. `knn:bank=coreset,max_bank=10000,index=hnsw` (values are parsed as Python literals).
"""
import argparse, ast, hashlib, json, os, statistics, subprocess, sys, time
from pathlib import Path

import numpy as np

from anomaly_nb.core import peak_rss_mb

DEFAULT_SETTINGS = [
    'padim',
    'gaussian',
    'knn:bank="random",max_bank=10000',
    'knn:bank="random",max_bank=10000,dtype="float16"',
    'knn:bank="coreset",max_bank=10000',
    'knn:bank="random",ratio=0.1,max_bank=None,index="ivf"',
    'knn:bank=None,index="ivf"',
    'knn:bank=None,index="hnsw"',
    'lunar:max_samples=5000',
    'lunar:max_samples=5000,sample="coreset"',
]
QUICK_SETTINGS = ['padim', 'knn:bank="random",max_bank=10000', 'knn:bank=None,index="ivf"']


def parse_setting(spec):
    "'knn:bank=\"coreset\",k=3' -> ('knn', {'bank': 'coreset', 'k': 3})"
    name, _, rest = spec.partition(':')
    kwargs = {}
    for item in filter(None, rest.split(',')):
        k, _, v = item.partition('=')
        try: kwargs[k.strip()] = ast.literal_eval(v.strip())
        except (ValueError, SyntaxError): kwargs[k.strip()] = v.strip()
    return name, kwargs


# ---------------------------------------------------------------- features, cached once per configuration
def config_key(a):
    cfg = dict(data=str(Path(a.data).resolve()), weights=str(a.weights), backbone=a.backbone, layers=a.layers,
               size=a.size, resize=a.resize)
    return hashlib.sha1(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:12], cfg


def build(a, detector='padim', **kw):
    from anomaly_nb.pipeline import build_model
    return build_model(a.backbone, layers=a.layers, weights=a.weights, detector=detector, size=a.size,
                       resize=a.resize, batch_size=a.batch_size, num_workers=a.workers, progress=False, **kw)


def cache_features(a):
    "Extract train and test features once; return the cache folder (reused when complete)."
    key, cfg = config_key(a)
    d = Path(a.cache) / key
    if (d / 'meta.json').exists(): return d
    from anomaly_nb.data import mvtec_samples
    d.mkdir(parents=True, exist_ok=True)
    model = build(a)
    s = mvtec_samples(a.data)
    times = {}
    for split in ('train', 'test'):
        t0 = time.perf_counter()
        f = model.extractor.extract(model._loader(s[split]), progress=False)
        times[split] = time.perf_counter() - t0
        np.save(d / f'{split}.npy', np.ascontiguousarray(f.transpose(0, 2, 3, 1).reshape(len(f), -1, f.shape[1])))
        grid = f.shape[2:]
        del f
    masks = np.concatenate([b['mask'].numpy() for b in model._loader(s['test'])])
    np.save(d / 'masks.npy', masks)
    meta = dict(cfg, grid=list(grid), n_train=len(s['train']), n_test=len(s['test']),
                labels=[x.label for x in s['test']], classes=[x.defect for x in s['test']],
                train_s_per_image=times['train'] / len(s['train']), test_s_per_image=times['test'] / len(s['test']),
                perm=np.random.default_rng(0).permutation(len(s['train'])).tolist(), threads=_threads())
    (d / 'meta.json').write_text(json.dumps(meta))
    return d


def _threads():
    import torch
    return torch.get_num_threads()


def read_rows(path, start, stop):
    "Rows [start, stop) of a cached .npy without memory-mapping (mapped pages would count in RSS)."
    with open(path, 'rb') as f:
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(f)
        row = int(np.prod(shape[1:]))
        f.seek(f.tell() + start * row * dtype.itemsize)
        out = np.fromfile(f, dtype=dtype, count=(stop - start) * row)
    return out.reshape(stop - start, *shape[1:])


def meta_dim(meta, d):
    return read_rows(d / 'train.npy', 0, 1).shape[-1]


def train_rows(d, meta, n):
    "Features of the first n images of the seeded permutation, (n, positions, channels), read image by image."
    idx = sorted(meta['perm'][:n])
    out = np.empty((n, *read_rows(d / 'train.npy', 0, 1).shape[1:]), np.float32)
    for j, i in enumerate(idx): out[j] = read_rows(d / 'train.npy', i, i + 1)[0]
    return out


# ---------------------------------------------------------------- one detector setting, in its own process
def run_setting(d, spec, n, test_every, recall_queries):
    "Fit and score one setting on cached features; a dict of measurements (run inside a subprocess)."
    import torch
    from anomaly_nb.detectors import get_detector
    from anomaly_nb.neighbours import recall_at_1, KNNDetector
    from anomaly_nb.maps import anomaly_maps, image_scores
    from anomaly_nb.metrics import image_auroc, pixel_auroc, pro_score
    meta = json.loads((d / 'meta.json').read_text())
    name, kw = parse_setting(spec)
    det = get_detector(name, **kw)
    X = train_rows(d, meta, n)
    per_position = det.input == 'grid'  # PaDiM: (images, positions, channels); the others: rows
    if not per_position: X = X.reshape(-1, X.shape[-1])
    t0, c0 = time.perf_counter(), time.process_time(); det.fit(X)
    fit_s, fit_cpu = time.perf_counter() - t0, time.process_time() - c0
    del X
    test_idx = list(range(0, meta['n_test'], test_every))
    h, w = meta['grid']
    maps, t_score, t_maps = [], 0., 0.
    for b in range(0, len(test_idx), 32):
        ids = test_idx[b:b + 32]
        F = np.stack([read_rows(d / 'test.npy', i, i + 1)[0] for i in ids]) if test_every > 1 else \
            read_rows(d / 'test.npy', ids[0], ids[-1] + 1)
        t0 = time.perf_counter()
        s = det.decision_function(F if per_position else F.reshape(-1, F.shape[-1]))
        t1 = time.perf_counter()
        maps.append(anomaly_maps(np.asarray(s).reshape(len(ids), h, w), meta['size'], 4.0))
        t_score += t1 - t0; t_maps += time.perf_counter() - t1
    maps = np.concatenate(maps)
    labels = np.array(meta['labels'])[test_idx]
    masks = np.load(d / 'masks.npy', mmap_mode='r')[test_idx]
    out = dict(setting=spec, n_train=n, n_test=len(test_idx), fit_s=fit_s, fit_cpu_s=fit_cpu, score_s=t_score, maps_s=t_maps,
               image_auroc=image_auroc(labels, image_scores(maps)), pixel_auroc=pixel_auroc(masks, maps),
               pro=pro_score(masks, maps), bank=None, recall_at_1=None, peak_rss_mb=peak_rss_mb(),
               threads=torch.get_num_threads())
    if isinstance(det, KNNDetector):  # after the peak RSS is taken: the exact reference needs extra copies
        out['bank'] = int(det.bank_size_)
        if det.index != 'flat' or det.dtype != 'float32':
            bank = train_rows(d, meta, n).reshape(-1, meta_dim(meta, d))[det.bank_idx_]
            Q = read_rows(d / 'test.npy', 0, meta['n_test'])
            Q = Q.reshape(-1, Q.shape[-1])
            Q = Q[np.random.default_rng(0).choice(len(Q), min(recall_queries, len(Q)), replace=False)]  # seeded sample
            out['recall_at_1'] = recall_at_1(det, bank, Q)
    return out


def run_e2e(a, spec, n):
    "The real pipeline end to end: `AnomalyModel.fit` on n training images, then `evaluate` (in a subprocess)."
    from anomaly_nb.data import mvtec_samples
    name, kw = parse_setting(spec)
    model = build(a, name, **kw)
    s = mvtec_samples(a.data)
    perm = np.random.default_rng(0).permutation(len(s['train']))[:n]
    model.fit([s['train'][i] for i in sorted(perm)])
    table, pred = model.evaluate(a.data)
    row = table.loc['all']
    return dict(setting=spec + ' (end to end)', n_train=n, n_test=len(pred.samples), fit_s=model.fit_s,
                score_s_per_image=float(row['score_s_per_image']), image_auroc=float(row['image_auroc']),
                pixel_auroc=float(row['pixel_auroc']), pro=float(row['pro']), peak_rss_mb=peak_rss_mb())


def subprocess_json(argv, log):
    "Run this script with `argv` in a fresh interpreter; its last stdout line is JSON."
    env = dict(os.environ)
    r = subprocess.run([sys.executable, __file__, *argv], capture_output=True, text=True, env=env)
    if log: log.write(r.stderr)
    if r.returncode != 0:
        return dict(error=(r.stderr.strip().splitlines() or ['?'])[-1])
    return json.loads(r.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- throughput: backbone alone vs the pipeline
def throughput(a, d, n_images, repeats, backbone_batches=(1, 2, 4, 8, 16, 32)):
    """Images/s of the backbone alone (decoded images in memory; every batch size, with one forward pass at a time on
    all threads and with `streams` passes in flight; the best is the limit) and of `predict` with PaDiM on the same
    images: defaults on the image files alone (as predicting new parts), with their masks (as `evaluate`), one forward
    pass at a time, scored batch by batch, and at batch 32 with one stream (the defaults before this benchmark)."""
    import torch
    from anomaly_nb.data import mvtec_samples, ImageDataset, Sample
    from anomaly_nb.features import in_streams
    meta = json.loads((d / 'meta.json').read_text())
    with_masks = mvtec_samples(a.data)['test'][:n_images]
    images_only = [Sample(s.path, s.label, s.defect) for s in with_masks]  # no ground truth to read
    rows = train_rows(d, meta, meta['n_train'])
    def fitted(spec, extractor=None):
        name, kw = parse_setting(spec)
        m = build(a, name, **kw)
        if extractor is not None: m.extractor = extractor  # one network in memory
        m.detector.fit(rows)
        m.n_train, m.grid = meta['n_train'], tuple(meta['grid'])
        return m
    model = fitted(a.throughput_detector[0])
    others = {spec: fitted(spec, model.extractor) for spec in a.throughput_detector[1:]}  # compared at the defaults
    del rows
    ds = ImageDataset(images_only, a.size, a.resize)
    x = torch.stack([ds[i]['image'] for i in range(len(ds))])
    default_bs, group, streams = model.batch_size, model.score_batch, model.streams
    def backbone(bs, n_streams):
        t0 = time.perf_counter()
        for _ in in_streams(model.extractor, (x[i:i + bs] for i in range(0, len(x), bs)), n_streams): pass
        return time.perf_counter() - t0
    def pipeline(samples, bs, group, n_streams, m=model):
        m.config = m.config.replace(batch_size=bs, score_batch=group, streams=n_streams)  # run settings: no refit
        t0 = time.perf_counter(); m.predict(samples); return time.perf_counter() - t0
    pipes = {'default': (images_only, default_bs, group, streams), 'default, with masks': (with_masks, default_bs, group, streams),
             'one stream': (images_only, default_bs, group, 1), 'ungathered': (images_only, default_bs, default_bs, streams),
             'batch 32, one stream': (images_only, 32, group, 1),
             **{f'default, {spec}': (images_only, default_bs, group, streams, m) for spec, m in others.items()}}
    stream_options = sorted({1, streams})
    runs = {**{('backbone', bs, n): lambda bs=bs, n=n: backbone(bs, n) for bs in backbone_batches for n in stream_options},
            **{('pipeline', k): lambda v=v: pipeline(*v) for k, v in pipes.items()}}
    for f in runs.values(): f()  # warm-up: one-off kernel selection for every batch shape
    times = {k: [] for k in runs}
    for _ in range(repeats):  # interleaved, so that a load change hits every setting alike
        for k, f in runs.items(): times[k].append(f())
    img_s = {k: len(x) / statistics.median(v) for k, v in times.items()}
    backbone_runs = {k[1:]: v for k, v in img_s.items() if k[0] == 'backbone'}
    best = max(backbone_runs, key=backbone_runs.get)
    limit = backbone_runs[best]
    def paired(pipe):  # the ratio within each round, then the median: drift between rounds cancels
        return statistics.median(b / p for b, p in zip(times[('backbone', *best)], times[('pipeline', pipe)]))
    return dict(detector=a.throughput_detector[0], images=len(x), backbone_img_s=limit, backbone_batch=best[0], backbone_streams=best[1],
                backbone_by_setting={f'batch {bs}, {n} stream{"s" * (n > 1)}': v for (bs, n), v in backbone_runs.items()},
                pipeline_img_s={k: img_s[('pipeline', k)] for k in pipes}, ratio=img_s[('pipeline', 'default')] / limit,
                ratio_with_masks=img_s[('pipeline', 'default, with masks')] / limit,
                paired_ratio=paired('default'), paired_ratio_with_masks=paired('default, with masks'),
                other_detectors={spec: dict(img_s=img_s[('pipeline', f'default, {spec}')],
                                            ratio=img_s[('pipeline', f'default, {spec}')] / limit,
                                            paired_ratio=paired(f'default, {spec}')) for spec in others},
                workers=model.config.num_workers, threads=torch.get_num_threads(), batch_size=default_bs, score_batch=group,
                streams=streams, repeats=repeats)


# ---------------------------------------------------------------- table
def fmt(x, spec):
    return '–' if x is None else format(x, spec)


def table(rows, meta):
    lines = ['| detector setting | n_train | bank | fit (s) | detector fit (s, wall / CPU) | score (s/image) | images/s | '
             'peak RSS (MB) | image AUROC | pixel AUROC | PRO | recall@1 |',
             '|---|---|---|---|---|---|---|---|---|---|---|---|']
    for r in rows:
        if 'error' in r:
            lines.append(f"| {r['setting']} | {r['n_train']} | failed: {r['error'][:120]} |" + ' |' * 9); continue
        if 'score_s_per_image' in r:  # end to end
            fit, det_fit, per = r['fit_s'], None, r['score_s_per_image']
        else:
            fit = r['n_train'] * meta['train_s_per_image'] + r['fit_s']
            det_fit = f"{r['fit_s']:.1f} / {r['fit_cpu_s']:.1f}"
            per = meta['test_s_per_image'] + (r['score_s'] + r['maps_s']) / r['n_test']
        lines.append(f"| {r['setting']} | {r['n_train']} | {fmt(r.get('bank'), ',')} | {fit:.1f} | {det_fit or '–'} | "
                     f"{per:.4f} | {1 / per:.1f} | {r['peak_rss_mb']:,.0f} | {r['image_auroc']:.3f} | "
                     f"{r['pixel_auroc']:.3f} | {r['pro']:.3f} | {fmt(r.get('recall_at_1'), '.3f')} |")
    return '\n'.join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    here = Path(__file__).resolve().parents[1]
    p.add_argument('--data', default=str(here.parent / 'shared/data/magnetic_tile/magnetic_tile'))
    p.add_argument('--weights', default=str(here.parent / 'shared/weights/tf_efficientnet_lite0.in1k.safetensors'))
    p.add_argument('--backbone', default='tf_efficientnet_lite0')
    p.add_argument('--layers', nargs='*', default=None, help='feature nodes; default: the backbone default')
    p.add_argument('--size', type=int, default=256)
    p.add_argument('--resize', default='stretch')
    p.add_argument('--batch-size', type=int, default=None, help='images per forward pass; default: the pipeline default')
    p.add_argument('--workers', type=int, default=None, help='DataLoader workers; default: the pipeline default')
    p.add_argument('--detectors', nargs='*', default=None, help='settings name:key=value,...; none given: only --e2e and the throughput')
    p.add_argument('--e2e', nargs='*', default=['padim'], help='settings also run end to end (real fit + evaluate)')
    p.add_argument('--n-train', type=int, nargs='+', default=[667])
    p.add_argument('--test-every', type=int, default=1, help='score every k-th test image (for costly settings)')
    p.add_argument('--recall-queries', type=int, default=5000)
    p.add_argument('--throughput-images', type=int, default=128, help='0: skip the throughput comparison')
    p.add_argument('--repeats', type=int, default=3)
    p.add_argument('--throughput-detector', nargs='+', default=['padim'],
                   help='detector settings of the pipeline in the throughput comparison: the first in every pipeline variant, the others at the defaults')
    p.add_argument('--backbone-batches', type=int, nargs='+', default=[1, 2, 4, 8, 16, 32],
                   help='batch sizes tried for the backbone-only limit')
    p.add_argument('--cache', default='/tmp/perf-cache')
    p.add_argument('--quick', action='store_true', help='three settings, the largest n_train, one repeat')
    p.add_argument('--features-only', action='store_true')
    p.add_argument('--log', default=None, help='append the subprocesses\' stderr here')
    p.add_argument('--_worker', default=None, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a._worker:  # inside a subprocess: one measurement, printed as JSON
        job = json.loads(a._worker)
        r = run_e2e(a, job['spec'], job['n']) if job['kind'] == 'e2e' else \
            run_setting(Path(job['dir']), job['spec'], job['n'], a.test_every, a.recall_queries)
        print(json.dumps(r)); return
    settings = a.detectors if a.detectors is not None else (QUICK_SETTINGS if a.quick else DEFAULT_SETTINGS)
    if a.quick: a.n_train, a.repeats = [max(a.n_train)], 1
    t0 = time.perf_counter()
    d = cache_features(a)
    meta = json.loads((d / 'meta.json').read_text())
    print(f"features: {d} ({time.perf_counter() - t0:.0f} s; {meta['train_s_per_image']:.4f} s per training image, "
          f"{meta['test_s_per_image']:.4f} s per test image)", flush=True)
    if a.features_only: return
    log = open(a.log, 'a') if a.log else None
    base = [f'--{k.replace("_", "-")}={v}' for k, v in dict(data=a.data, weights=a.weights, backbone=a.backbone,
            size=a.size, resize=a.resize, test_every=a.test_every,
            recall_queries=a.recall_queries).items()]
    if a.layers: base += ['--layers', *a.layers]
    if a.workers is not None: base.append(f'--workers={a.workers}')
    if a.batch_size is not None: base.append(f'--batch-size={a.batch_size}')
    rows = []
    for n in a.n_train:
        for spec in settings:
            r = subprocess_json(base + ['--_worker', json.dumps(dict(kind='setting', dir=str(d), spec=spec, n=n))], log)
            r.setdefault('setting', spec); r.setdefault('n_train', n)
            rows.append(r); print(json.dumps(r), flush=True)
    for spec in a.e2e:
        n = max(a.n_train)
        r = subprocess_json(base + ['--test-every=1', '--_worker', json.dumps(dict(kind='e2e', spec=spec, n=n))], log)
        r.setdefault('setting', spec + ' (end to end)'); r.setdefault('n_train', n)
        rows.append(r); print(json.dumps(r), flush=True)
    tp = throughput(a, d, a.throughput_images, a.repeats, tuple(a.backbone_batches)) if a.throughput_images > 0 else None
    print(json.dumps(tp), flush=True)
    print(f"\n{a.backbone}, layers {a.layers or 'default'}, {a.size}x{a.size} ({a.resize}), {meta['n_test']} test images"
          f"{f' (every {a.test_every}th scored)' if a.test_every > 1 else ''}; load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} CPUs at the end\n")
    print(table(rows, meta))
    if tp is None: return
    by = ', '.join(f"{k}: {v:.1f}" for k, v in tp['backbone_by_setting'].items())
    pl = tp['pipeline_img_s']
    print(f"\nThroughput on the same {tp['images']} test images (median of {tp['repeats']}, interleaved; "
          f"{tp['threads']} torch threads, DataLoader workers: {tp['workers']}). Backbone alone ({by} images/s): best "
          f"{tp['backbone_img_s']:.1f} at batch {tp['backbone_batch']} with {tp['backbone_streams']} stream(s). Full pipeline "
          f"(decode + backbone + {tp['detector']} + maps) at the defaults (batch {tp['batch_size']}, {tp['streams']} streams, scored in "
          f"groups of {tp['score_batch']}): {pl['default']:.1f} images/s on the image files, **ratio {tp['ratio']:.2f}** "
          f"(median of the per-round ratios {tp['paired_ratio']:.2f}); {pl['default, with masks']:.1f} reading their masks "
          f"too (ratio {tp['ratio_with_masks']:.2f}, per round {tp['paired_ratio_with_masks']:.2f}); "
          f"one stream {pl['one stream']:.1f}; scored batch by batch {pl['ungathered']:.1f}; "
          f"batch 32, one stream {pl['batch 32, one stream']:.1f}"
          + ''.join(f"; {spec} at the defaults {o['img_s']:.1f} (ratio {o['ratio']:.2f}, per round {o['paired_ratio']:.2f})"
                    for spec, o in tp['other_detectors'].items()))


if __name__ == '__main__':
    main()
