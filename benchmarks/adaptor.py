"""The adaptor + discriminator detector (SimpleNet's recipe) against PaDiM on magnetic_tile.

    python benchmarks/adaptor.py select  [--shared ../shared] [--large]   # choose settings on synthetic defects
    python benchmarks/adaptor.py compare [--shared ../shared]   # the test table, side by side

`select` never reads test/: it holds out 120 of the 667 good training images (seeded), keeps 40 of
them good and paints synthetic defects on the other 80 (soft bright or dark blobs, thin dark
scratches, small dark spots; masks where the change is), fits on the remaining 547 and scores every
candidate setting on those 120 images. Features are extracted once and shared by all candidates. With `--large`
the 80 are painted with one large region of changed texture each instead (`paint_large`, 25-60 % of the tile).

`compare` fits each detector on all of train/good and scores all 673 test images on the same
features (the backbone runs once; the loader, extractor, maps and image scores are the library's, as
in `AnomalyModel.fit` / `evaluate`), then also scores two combinations of existing outputs: the image
score of PaDiM with the map of the adaptor, and with the map of the full-bank kNN (both free once the
detectors have run). Prints one markdown table.
"""
import argparse, os, shutil, time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from PIL import Image

from anomaly_nb.data import ImageDataset, Sample
from anomaly_nb.detectors import get_detector
from anomaly_nb.images import image_part
from anomaly_nb.maps import image_scores
from anomaly_nb.metrics import metrics_table
from anomaly_nb.pipeline import build_model, to_rows

# ---------------------------------------------------------------- synthetic validation (select)

def paint(img:np.ndarray, rng:np.random.Generator)->tuple[np.ndarray, np.ndarray, str]:
    "A synthetic defect on a gray image: (image, mask, kind)."
    h, w = img.shape
    yy, xx = np.mgrid[:h, :w]
    kind = rng.choice(['blob', 'scratch', 'spot'])
    cy, cx = rng.uniform(0.2, 0.8) * h, rng.uniform(0.2, 0.8) * w
    if kind == 'blob':  # a soft patch, brighter or darker: like uneven grinding
        ry, rx = rng.uniform(0.08, 0.25, size=2) * min(h, w)
        a = rng.uniform(0, np.pi)
        u = ((xx - cx) * np.cos(a) + (yy - cy) * np.sin(a)) / rx
        v = (-(xx - cx) * np.sin(a) + (yy - cy) * np.cos(a)) / ry
        prof = np.clip(1.5 * (1 - np.sqrt(u ** 2 + v ** 2)), 0, 1)  # flat top, soft edge
        delta = rng.choice([-1, 1]) * rng.uniform(15, 35) * prof
    elif kind == 'scratch':  # a thin dark line: like a crack
        a, half, width = rng.uniform(0, np.pi), rng.uniform(0.1, 0.3) * min(h, w), rng.uniform(1.0, 2.5)
        along = (xx - cx) * np.cos(a) + (yy - cy) * np.sin(a)
        across = -(xx - cx) * np.sin(a) + (yy - cy) * np.cos(a)
        prof = np.clip(width - np.abs(across), 0, 1) * (np.abs(along) < half)
        delta = -rng.uniform(30, 60) * prof
    else:  # a small dark pit: like a blowhole
        r = rng.uniform(0.02, 0.05) * min(h, w)
        prof = np.clip(r + 1 - np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2), 0, 1)
        delta = -rng.uniform(30, 70) * prof
    out = np.clip(img.astype(np.float32) + delta, 0, 255).astype(np.uint8)
    return out, (prof >= 0.5), str(kind)

def paint_large(img:np.ndarray, rng:np.random.Generator)->tuple[np.ndarray, np.ndarray, str]:
    "A large region of changed texture on a gray image, 25-60 % of its area: (image, mask, kind), like uneven grinding."
    h, w = img.shape
    yy, xx = np.mgrid[:h, :w]
    share = rng.uniform(0.25, 0.6)  # of the image's area, for an ellipse of random aspect and angle
    aspect, a = np.exp(rng.uniform(np.log(0.5), np.log(2))), rng.uniform(0, np.pi)
    ry = np.sqrt(share * h * w / (np.pi * aspect)); rx = ry * aspect
    cy, cx = rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w
    u = ((xx - cx) * np.cos(a) + (yy - cy) * np.sin(a)) / rx
    v = (-(xx - cx) * np.sin(a) + (yy - cy) * np.cos(a)) / ry
    prof = np.clip(4 * (1 - np.sqrt(u ** 2 + v ** 2)), 0, 1)  # soft edge over the outer quarter of the radius
    x = img.astype(np.float32)
    smooth = cv2.GaussianBlur(x, (0, 0), rng.uniform(1.5, 3.0))
    kind = rng.choice(['smoother', 'rougher'])
    changed = smooth if kind == 'smoother' else x + rng.uniform(0.6, 1.2) * (x - smooth)  # grinding marks removed / deepened
    changed = changed + rng.choice([-1, 1]) * rng.uniform(3, 10)  # and lit a little differently
    out = np.clip(x + prof * (changed - x), 0, 255).astype(np.uint8)
    return out, (prof >= 0.5), str(kind)

def synthetic_split(category:Path, n_hold:int=120, n_good:int=40, seed:int=0, large:bool=False):
    "(fit samples, validation samples) from train/good only; the validation defects (`large`: `paint_large`) are painted into a temp folder."
    goods = sorted((category/'train'/'good').glob('*.png'))
    rng = np.random.default_rng(seed)
    hold = set(rng.choice(len(goods), n_hold, replace=False).tolist())
    fit = [Sample(p) for i, p in enumerate(goods) if i not in hold]
    held = [goods[i] for i in sorted(hold)]
    out = Path(os.environ.get('TMPDIR', '/tmp'))/f'adaptor_val_{seed}{"_large" if large else ""}'
    shutil.rmtree(out, ignore_errors=True); (out/'img').mkdir(parents=True); (out/'mask').mkdir()
    val = [Sample(p) for p in held[:n_good]]
    for p in held[n_good:]:
        img = np.asarray(Image.open(p).convert('L'))
        d, m, kind = (paint_large if large else paint)(img, rng)
        Image.fromarray(d).save(out/'img'/f'{kind}_{p.name}')
        Image.fromarray((m * 255).astype(np.uint8)).save(out/'mask'/f'{kind}_{p.name}')
        val.append(Sample(out/'img'/f'{kind}_{p.name}', label=1, defect=kind, mask=out/'mask'/f'{kind}_{p.name}'))
    return fit, val

def pixel_info(model, samples):
    "Each image's valid (not padding) pixels and ground-truth mask at input resolution, (N, H, W) bool each."
    ds = ImageDataset(samples, model.config.size, model.config.resize)
    items = [ds[i] for i in range(len(samples))]
    return np.stack([it['valid'].numpy() for it in items]), np.stack([it['mask'].numpy() for it in items])

def features(model, samples, info:bool=True, crops:bool=False):
    """Patch features (N, C, h, w) as `AnomalyModel.fit` extracts them (the model's geometry: with resize='box' each
    image's own box; `crops`: then a crop of random aspect of each, where fitting adds them) and, with `info`,
    `pixel_info` (read again)."""
    feats = model._extract(model._loader(samples))
    if crops and model._adds_crops(samples):
        feats = np.concatenate([feats, model._extract(model._loader(samples, crop_seed=model.config.seed))])
    return (feats, *pixel_info(model, samples)) if info else (feats, None, None)

def det_input(det, feats):
    rows = to_rows(feats)
    return rows if det.input == 'rows' else rows.reshape(feats.shape[0], -1, feats.shape[1])

def score_maps(det, feats, model, valid, chunk=64):
    "Anomaly maps of features by a fitted detector, placed on the input as the model places them (`AnomalyModel._maps`)."
    out = []
    for i in range(0, len(feats), chunk):
        f = feats[i:i+chunk]
        out.append(np.asarray(det.score(det_input(det, f))).reshape(len(f), *f.shape[2:]))
    return model._maps(np.concatenate(out), valid)

def table(samples, maps, valid, masks, scores=None):
    scores = image_scores(maps, None, valid) if scores is None else scores
    labels = np.array([s.label for s in samples]); classes = [s.defect for s in samples]
    return metrics_table(labels, scores, [image_part(m, v) for m, v in zip(masks, valid)],  # regions keep their shape (PRO)
                         [image_part(a, v) for a, v in zip(maps, valid)], classes)

CANDIDATES = {  # name: detector keyword arguments; the first is the reference
    'padim': dict(detector='padim'),
    'adaptor noise 0.25': dict(detector='adaptor', noise=0.25),
    'adaptor noise 0.5': dict(detector='adaptor', noise=0.5),
    'adaptor noise 1.0': dict(detector='adaptor', noise=1.0),
    'adaptor noise 0.5, frozen adaptor': dict(detector='adaptor', noise=0.5, adaptor_lr=0.0),
    'adaptor noise 0.5, 3000 steps': dict(detector='adaptor', noise=0.5, steps=3000),
    'adaptor noise 0.5, hidden 1024': dict(detector='adaptor', noise=0.5, hidden=1024),
    'adaptor noise 0.5, positional': dict(detector='adaptor', noise=0.5, positional=True),
    'knn full bank': dict(detector='knn', bank=None, index='ivf'),
}
COMBOS = {'padim score + knn map': ('padim', 'knn full bank')}  # (image score from, map from)

def select(category:Path, weights:Path, names:list[str], large:bool=False):
    model = build_model(weights=weights, progress=False)
    fit, val = synthetic_split(category, large=large)
    t0 = time.perf_counter()
    ftr, _, _ = features(model, fit, info=False, crops=True)
    fva, valid, masks = features(model, val)
    print(f"features: {len(fit)} fit + {len(val)} validation images in {time.perf_counter() - t0:.0f} s", flush=True)
    rows, maps = [], {}
    def add(name, t, fs):
        rows.append({'setting': name, **{c: '{:.3f} / {:.3f} / {:.3f}'.format(*t.loc[c, ['image_auroc', 'pixel_auroc', 'pro']])
                                          for c in list(t.index)}, 'detector fit s': fs})
        print(pd.DataFrame(rows[-1:]).to_markdown(index=False), flush=True)
    for name in names:
        kw = dict(CANDIDATES[name]); det = get_detector(kw.pop('detector'), **kw)
        t0 = time.perf_counter(); det.fit(det_input(det, ftr)); fs = time.perf_counter() - t0
        maps[name] = score_maps(det, fva, model, valid)
        add(name, table(val, maps[name], valid, masks), f'{fs:.0f}')
    for name, (score_of, map_of) in COMBOS.items():
        if score_of in maps and map_of in maps:
            add(name, table(val, maps[map_of], valid, masks, image_scores(maps[score_of], None, valid)), 'both')
    print('\nimage AUROC / pooled pixel AUROC / PRO on 40 held-out good + 80 painted training images\n')
    print(pd.DataFrame(rows).to_markdown(index=False))

# ---------------------------------------------------------------- test table (compare)

CONFIGS = {  # name: (description, detector keyword arguments)
    'padim': ("PaDiM (default)", dict(detector='padim')),
    'adaptor': ("adaptor + discriminator (SimpleNet recipe), defaults", dict(detector='adaptor')),
    'knn': ("kNN k=1, full bank, FAISS IVF", dict(detector='knn', bank=None, index='ivf')),
    'adaptor-positional': ("adaptor + discriminator, per-position standardisation", dict(detector='adaptor', positional=True)),
}

def compare(category:Path, weights:Path, configs:list[str], combos:bool=True, cache:Path|None=None):
    """Every detector on the same features: the backbone runs once over train/good and once over test/ (as
    `AnomalyModel.fit` / `predict` run it: same loader, extractor, maps and image scores); each detector's fit
    seconds are the shared feature time plus its own fit, its seconds per image the shared test feature time
    per image plus its own scoring and maps. Wall and CPU seconds both, because the cores are shared."""
    from anomaly_nb.layouts import load_layout
    model = build_model(weights=weights, progress=False)
    lay = load_layout(category, 0)
    train, test = lay.train, lay.test
    clock = lambda: (time.perf_counter(), time.process_time())
    if cache and (cache/'train.npy').is_file():  # features (and their measured times) from an earlier run
        ftr, fte = np.load(cache/'train.npy'), np.load(cache/'test.npy')
        feat_fit, feat_test = (tuple(x) for x in np.load(cache/'seconds.npy'))
    else:
        t0 = clock(); ftr, _, _ = features(model, train, info=False, crops=True); t1 = clock()
        fte, _, _ = features(model, test, info=False); t2 = clock()
        feat_fit, feat_test = (t1[0] - t0[0], t1[1] - t0[1]), (t2[0] - t1[0], t2[1] - t1[1])
        if cache:
            cache.mkdir(parents=True, exist_ok=True)
            np.save(cache/'train.npy', ftr); np.save(cache/'test.npy', fte); np.save(cache/'seconds.npy', np.array([feat_fit, feat_test]))
    valid, masks = pixel_info(model, test)
    print(f"features: {len(train)} training images {feat_fit[0]:.0f} s wall / {feat_fit[1]:.0f} s CPU, "
          f"{len(test)} test images {feat_test[0]:.0f} s / {feat_test[1]:.0f} s", flush=True)
    results, rows = {}, []
    def add(desc, t, fit_s, s_img):
        rows.append({'configuration': desc, **{c: '{:.3f} / {:.3f} / {:.3f}'.format(*t.loc[c, ['image_auroc', 'pixel_auroc', 'pro']])
                                               for c in ['blowhole', 'break', 'crack', 'fray', 'uneven', 'mean', 'all']},
                     'fit s, wall / CPU (667 images)': fit_s, 's / image, wall / CPU': s_img})
        print(pd.DataFrame(rows[-1:]).to_markdown(index=False), flush=True)
    for name in configs:
        desc, kw = CONFIGS[name]
        kw = dict(kw); det = get_detector(kw.pop('detector'), **kw)
        a = clock(); det.fit(det_input(det, ftr)); b = clock()
        maps = score_maps(det, fte, model, valid); c = clock()
        results[name] = maps
        fit_s = f'{feat_fit[0] + b[0] - a[0]:.0f} / {feat_fit[1] + b[1] - a[1]:.0f}'
        s_img = f'{(feat_test[0] + c[0] - b[0]) / len(test):.3f} / {(feat_test[1] + c[1] - b[1]) / len(test):.3f}'
        add(desc, table(test, maps, valid, masks), fit_s, s_img)
        del det
    if combos and 'padim' in results:
        p_scores = image_scores(results['padim'], None, valid)
        for other in [n for n in ('adaptor', 'adaptor-positional', 'knn') if n in results]:
            add(f"PaDiM image score, {other} map", table(test, results[other], valid, masks, scores=p_scores), 'both', 'both')
    print('\nimage AUROC / pooled pixel AUROC / PRO per defect class; "all" pools every test image; "mean" averages the classes\n')
    print(pd.DataFrame(rows).to_markdown(index=False))

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('mode', choices=['select', 'compare'])
    p.add_argument('--shared', type=Path, default=Path(os.environ.get('ANOMALY_NB_SHARED', Path(__file__).resolve().parents[2] / 'shared')))
    p.add_argument('--large', action='store_true', help='select: paint large regions of changed texture (`paint_large`) instead')
    p.add_argument('--candidates', nargs='+', default=list(CANDIDATES), choices=list(CANDIDATES), help='select: settings to try')
    p.add_argument('--configs', nargs='+', default=list(CONFIGS), choices=list(CONFIGS), help='compare: detectors to run')
    p.add_argument('--cache', type=Path, default=None, help='compare: keep the features (and their times) here and reuse them')
    a = p.parse_args()
    category = a.shared / 'data' / 'magnetic_tile' / 'magnetic_tile'
    weights = a.shared / 'weights' / 'tf_efficientnet_lite0.in1k.safetensors'
    if a.mode == 'select': select(category, weights, a.candidates, a.large)
    else: compare(category, weights, a.configs, cache=a.cache)

if __name__ == '__main__':
    main()
