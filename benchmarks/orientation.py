"""Does an image's score depend on its shape? Score vs orientation of good images, on the demo data and magnetic_tile.

    python benchmarks/orientation.py [--shared ../shared] [--cache /tmp/orientation] [--data demo magnetic_tile]

The default model (PaDiM at the default input size, offline ImageNet weights of `tf_efficientnet_lite0`; geometry per variant) is
fitted on the good training images of each data set and scores good images of both orientations: for the demo, the
sample category `anomaly-nb demo` makes (seed 0, fitted on the 54 images the demo fits on; 58 of its 60 training
images are landscape): its 6 held-out and 20 test good images, plus the good images of four more seeds of the same generator, so that there are enough portrait ones to count; for magnetic_tile, the 285 good
test images (square ones left out). Printed, as one markdown table: how many portrait/landscape good images, their
median scores, the AUROC of score vs orientation (0.5: the score says nothing about the shape; the goal is 0.5 ± 0.1),
the image AUROC on the test split, and where the portrait images' maps are hot (mean patch score within 3 grid cells of
the image's left/right edge against the rest of the image).

Ways of giving the network a padded image, compared side by side (`--variants`):

- `padded`: the library as it is: the resized image is edge-padded to 256 x 256 and the network sees the padding.
- `cropped` (a prototype, not in the library): the network runs on the image's own pixels only (the valid box, rounded
  inwards to the 8-pixel grid), and the feature grid is padded afterwards by repeating its edge cells, so that every
  image's border looks to the network like the border of the input.
- `turned` (a prototype): a portrait input is turned a quarter before the network, so that every image lies
  landscape (padding only above and below); its score grid is turned back.
- `padded-relative`, `cropped-relative` (prototypes): the features as above, but PaDiM's grid positions are relative
  to the image: each image's feature cells inside its valid box are resampled (bilinear) to the full 32 x 32 grid
  before fitting and scoring, and the scores are resampled back into the box, so that position (i, j) always means the
  same place of the image, never padding. They reuse the features of `padded` / `cropped`.
- `stretched`: the library's `resize='stretch'` (the earlier default): no padding at all, every image filling the input.
- `library:pad`, `library:box`, `library:box-plain`: the library itself, `AnomalyModel.fit` / `predict` with
  `resize='pad'` or `'box'` (the network on each image's own box, its sides rounded to 16 px, grid positions relative to
  the image: `features.box_features`; fitted on a crop of random aspect of each training image too when their shapes
  differ, `aspect_crops=True`), and `'box'` with `aspect_crops=False`.
- `margin` (a prototype): every image is fitted into the input less 8 pixels on each side, so that every image edge,
  of a landscape or a portrait image alike, has edge padding beside it and none touches the input's border.

On magnetic_tile the test split's pixel AUROC and PRO (whole regions) are printed too.

Any variant can take `+aug` or `+raug` (prototypes): the training images are fitted together with one crop of each
(seeded): `+aug` a crop of the other orientation (width/height log-uniform in [1/2, 1] of the image's shorter side),
`+raug` a crop of any aspect (width/height log-uniform in [1/2, 2]), so that the statistics of every grid position
see images of both shapes.

`--data magnetic_tile_synthetic` needs no test image: it fits on 547 of the 667 good training images and scores the
other 120 (40 kept good, 80 with painted defects, as `benchmarks/adaptor.py select` makes them): the data to choose on.

Features are cached under `--cache` (one `.npz` per data set, split and variant).
"""
import argparse, os
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import roc_auc_score

from anomaly_nb.pipeline import AnomalyModel, ModelConfig
from anomaly_nb.data import make_synthetic_category
from anomaly_nb.layouts import load_layout
from anomaly_nb.thresholds import split_holdout
from anomaly_nb.maps import anomaly_maps, image_scores
from anomaly_nb.data import ImageDataset, make_loader
from anomaly_nb.images import image_part
from anomaly_nb.metrics import metrics_table

GRID = 8  # stride of the finest feature grid of the default backbone
VARIANTS = ['padded', 'cropped', 'turned', 'padded-relative', 'cropped-relative', 'margin', 'stretched']
VARIANTS += [v + a for a in ('+aug', '+raug') for v in VARIANTS] + ['library:pad', 'library:box', 'library:box-plain']

def cropped_features(model, x:torch.Tensor, valid:torch.Tensor)->torch.Tensor:
    "Prototype: features of each image's valid box only (rounded inwards to the grid), edge-padded on the feature grid."
    out = []
    H, W = x.shape[-2] // GRID, x.shape[-1] // GRID
    for xi, vi in zip(x, valid):
        r, c = torch.nonzero(vi.any(1))[:, 0], torch.nonzero(vi.any(0))[:, 0]
        t, l = -(-int(r[0]) // GRID) * GRID, -(-int(c[0]) // GRID) * GRID
        b, rt = (int(r[-1]) + 1) // GRID * GRID, (int(c[-1]) + 1) // GRID * GRID
        f = model.extractor(xi[None, :, t:b, l:rt])[0].float().numpy()
        pad = ((0, 0), (t // GRID, H - t // GRID - f.shape[1]), (l // GRID, W - l // GRID - f.shape[2]))
        out.append(np.pad(f, pad, mode='edge'))
    return torch.from_numpy(np.stack(out))

def lies_portrait(valid:torch.Tensor)->torch.Tensor:
    "Which padded inputs hold an image taller than wide."
    return valid.any(-1).sum(-1) > valid.any(-2).sum(-1)

def turn(x:torch.Tensor, which:torch.Tensor, k:int=1)->torch.Tensor:
    "The inputs (or grids) `which` marks turned a quarter (`k`=1: counter-clockwise, -1: back), the others as they are."
    return torch.where(which.view(-1, *[1] * (x.ndim - 1)), torch.rot90(x, k, (-2, -1)), x)

def boxes(valid:np.ndarray)->list[tuple[int, int, int, int]]:
    "Each input's valid box in feature cells (top, bottom, left, right), rounded inwards."
    out = []
    for v in valid:
        r, c = np.flatnonzero(v.any(1)), np.flatnonzero(v.any(0))
        out.append((-(-r[0] // GRID), (r[-1] + 1) // GRID, -(-c[0] // GRID), (c[-1] + 1) // GRID))
    return out

def to_relative(feats:np.ndarray, bx:list)->np.ndarray:
    "Each feature grid's box resampled (bilinear) to the whole grid."
    n = feats.shape[2:]
    return np.stack([torch.nn.functional.interpolate(torch.from_numpy(f[None, :, t:b, l:r]), size=n, mode='bilinear')[0].numpy()
                     for f, (t, b, l, r) in zip(feats, bx)])

def from_relative(s:np.ndarray, bx:list)->np.ndarray:
    "Each score grid resampled (bilinear) into its box, edge cells repeated outside it."
    (h, w), out = s.shape[1:], []
    for g, (t, b, l, r) in zip(s, bx):
        x = torch.nn.functional.interpolate(torch.from_numpy(g[None, None]), size=(b - t, r - l), mode='bilinear')[0, 0].numpy()
        out.append(np.pad(x, ((t, h - b), (l, w - r)), mode='edge'))
    return np.stack(out)

MARGIN = 8  # pixels of padding on every side in the `margin` variant

def aspect_crops(samples:list, folder:Path, seed:int=0, both:bool=False)->list:
    """Prototype: one crop of each image with the other orientation (aspect drawn log-uniformly in [1/2, 1]), saved as PNG;
    with `both`, a crop of width/height drawn log-uniformly in [1/2, 2] (either orientation; an image already narrower keeps its aspect)."""
    from PIL import Image
    from anomaly_nb.data import Sample
    rng, out = np.random.default_rng(seed), []
    folder.mkdir(parents=True, exist_ok=True)
    for i, s in enumerate(samples):
        f = folder / f'{i:04d}.png'
        if not f.exists():
            img = Image.open(s.path); w, h = img.size
            r = float(np.exp(rng.uniform(np.log(0.5), 0)))
            if both:
                a = float(np.exp(rng.uniform(np.log(0.5), np.log(2))))  # width / height of the crop
                cw, ch = (min(w, round(h * a)), h) if a <= w / h else (w, min(h, round(w / a)))
                x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
                img.crop((x, y, x + cw, y + ch)).save(f)
            elif w >= h:  # landscape: a portrait crop, full height
                cw = max(8, round(h * r)); x = int(rng.integers(0, w - cw + 1)) if w > cw else 0
                img.crop((x, 0, x + min(cw, w), h)).save(f)
            else:  # portrait: a landscape crop, full width
                ch = max(8, round(w * r)); y = int(rng.integers(0, h - ch + 1)) if h > ch else 0
                img.crop((0, y, w, y + min(ch, h))).save(f)
        out.append(Sample(f))
    return out

def margin_batches(model, samples):
    "Batches as the library loads them, but fitted into the input less `MARGIN` on every side, then edge-padded."
    H, W = model.config.size
    for b in make_loader(ImageDataset(samples, (H - 2 * MARGIN, W - 2 * MARGIN), 'pad'), model.batch_size):
        m = (MARGIN,) * 4
        yield dict(b, image=torch.nn.functional.pad(b['image'], m, mode='replicate'),
                   valid=torch.nn.functional.pad(b['valid'], m, value=False), mask=torch.nn.functional.pad(b['mask'], m, value=False))

def features(model, samples, variant:str, path:Path)->dict:
    "Features, valid masks, original sizes and labels of `samples` (cached at `path`)."
    if path.exists(): return dict(np.load(path))
    feats, valid, osz = [], [], []
    with torch.no_grad():
        loader = (margin_batches(model, samples) if variant == 'margin' else
                  make_loader(ImageDataset(samples, model.config.size, 'stretch'), model.batch_size) if variant == 'stretched' else model._loader(samples))
        for b in loader:
            f = (model.extractor(b['image']) if variant in ('padded', 'margin', 'stretched') else
                 model.extractor(turn(b['image'], lies_portrait(b['valid']))) if variant == 'turned' else
                 cropped_features(model, b['image'], b['valid']))
            feats.append(f.float().numpy()); valid.append(b['valid'].numpy()); osz.append(b['orig_size'].numpy())
    d = dict(feats=np.concatenate(feats), valid=np.concatenate(valid), osz=np.concatenate(osz),
             labels=np.array([s.label for s in samples]))
    np.savez(path, **d)
    return d

def scores(model, d:dict, variant:str, masks=None)->tuple:
    "Image scores as `AnomalyModel.predict` makes them, the patch-score grids, and with `masks` pixel AUROC and PRO."
    relative = variant.endswith('-relative')
    bx = boxes(d['valid']) if relative else None
    s = model._score(torch.from_numpy(to_relative(d['feats'], bx) if relative else d['feats']))
    if relative: s = from_relative(s, bx)
    if variant == 'turned': s = turn(torch.from_numpy(s), lies_portrait(torch.from_numpy(d['valid'])), -1).numpy()
    maps = anomaly_maps(s, model.config.size, model.config.sigma)
    sc = image_scores(maps, model.config.topk, d['valid'])
    if masks is None: return sc, s, None
    t = metrics_table(d['labels'], sc, [image_part(m, v) for m, v in zip(masks, d['valid'])],
                      [image_part(m, v) for m, v in zip(maps, d['valid'])], ['defect' if l else 'good' for l in d['labels']])
    return sc, s, t.loc['all', ['pixel_auroc', 'pro']].tolist()

def edge_heat(grids:np.ndarray, valid:np.ndarray, cells:int=3)->float:
    "Mean patch score within `cells` grid cells of the valid box's left/right edges, over the mean of the rest of the box."
    ratios = []
    for g, v in zip(grids, valid):
        cv = v.reshape(g.shape[0], GRID, g.shape[1], GRID).all((1, 3))
        rows, cols = np.flatnonzero(cv.any(1)), np.flatnonzero(cv.any(0))
        box = g[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
        ratios.append(np.r_[box[:, :cells].ravel(), box[:, -cells:].ravel()].mean() / box[:, cells:-cells].mean())
    return float(np.median(ratios))

def portrait(osz): return osz[:, 0] > osz[:, 1]

def test_masks(test:list, config:ModelConfig, path:Path, margin:bool=False, resize:str='pad')->np.ndarray:
    "Ground-truth masks of the test images on the padded (or stretched) input grid (cached at `path`)."
    if not path.exists():
        (H, W), m = config.size, MARGIN if margin else 0
        ds = ImageDataset(test, (H - 2 * m, W - 2 * m), resize)
        np.savez(path, masks=np.stack([np.pad(ds[i]['mask'].numpy(), m) for i in range(len(ds))]))
    return np.load(path)['masks']

def run_library(name:str, fit_on:list, goods:list, test:list, resize:str, config:ModelConfig, cache:Path)->dict:
    "The library end to end (`AnomalyModel.fit` / `predict`) with `resize`: no cached features, fit time measured."
    import time
    model = AnomalyModel(config.replace(resize=resize.removesuffix('-plain'), aspect_crops=not resize.endswith('-plain')))
    t0 = time.perf_counter(); model.fit(fit_on); fit_s = time.perf_counter() - t0
    te = model.predict(test)
    good = [s for s in te.samples if s.label == 0] + [s for g in goods for s in g]
    pg = model.predict(good)
    keep = pg.orig_sizes[:, 0] != pg.orig_sizes[:, 1]
    p, sg = portrait(pg.orig_sizes)[keep], pg.scores[keep]
    pixel = None
    if any(t.mask for t in test):
        t = metrics_table(te.labels, te.scores, [image_part(m, v) for m, v in zip(te.masks, te.valid)],
                          [image_part(m, v) for m, v in zip(te.maps, te.valid)], te.classes)
        pixel = t.loc['all', ['pixel_auroc', 'pro']].tolist()
    return {'data': name, 'network sees': f'library, resize={resize!r}', 'good portrait / landscape': f"{p.sum()} / {(~p).sum()}",
            'median score portrait / landscape': f"{np.median(sg[p]):.1f} / {np.median(sg[~p]):.1f}",
            'orientation AUROC': f"{roc_auc_score(p, sg):.3f}", 'portrait edge heat': '–', 'landscape edge heat': '–',
            'image AUROC (test)': f"{roc_auc_score(te.labels, te.scores):.3f}",
            'pixel AUROC / PRO (test)': '–' if pixel is None else '{:.3f} / {:.3f}'.format(*pixel), 'fit s': f'{fit_s:.0f}'}

def run(name:str, fit_on:list, goods:list, test:list, variant:str, config:ModelConfig, cache:Path)->dict:
    if variant.startswith('library:'): return run_library(name, fit_on, goods, test, variant.split(':')[1], config, cache)
    model = AnomalyModel(config)
    aug = variant[variant.index('+'):] if '+' in variant else ''
    variant = variant.removesuffix(aug)
    base = variant.removesuffix('-relative')  # the features a variant uses
    tr = features(model, fit_on, base, cache / f'{name}_train_{base}.npz')
    if aug:  # the training images plus one crop of each with the other orientation
        tag = 'rcrops' if aug == '+raug' else 'crops'
        ex = features(model, aspect_crops(fit_on, cache / 'data' / f'{name}_{tag}', both=aug == '+raug'), base, cache / f'{name}_{tag}_{base}.npz')
        tr = {k: np.concatenate([tr[k], ex[k]]) for k in ('feats', 'valid', 'osz', 'labels')}
    f = to_relative(tr['feats'], boxes(tr['valid'])) if variant.endswith('-relative') else tr['feats']
    model.detector.fit(model._detector_input(f))
    model.grid = tuple(tr['feats'].shape[2:])
    te = features(model, test, base, cache / f'{name}_test_{base}.npz')
    g = [features(model, s, base, cache / f'{name}_good{i}_{base}.npz') for i, s in enumerate(goods)]
    g = [{k: te[k][te['labels'] == 0] for k in ('feats', 'valid', 'osz', 'labels')}] + g  # the test split's good images first
    g = {k: np.concatenate([x[k] for x in g]) for k in ('feats', 'valid', 'osz', 'labels')}
    sg, grids, _ = scores(model, g, variant)
    masks = (test_masks(test, config, cache / f'{name}_test_masks{"_" + base if base in ("margin", "stretched") else ""}.npz', base == 'margin',
                        'stretch' if base == 'stretched' else 'pad')
             if any(t.mask for t in test) else None)
    st, _, pixel = scores(model, te, variant, masks)
    keep = g['osz'][:, 0] != g['osz'][:, 1]  # square images have no orientation
    p = portrait(g['osz'])[keep]
    sg, grids, valid = sg[keep], grids[keep], g['valid'][keep]
    return {'data': name, 'network sees': variant + aug, 'good portrait / landscape': f"{p.sum()} / {(~p).sum()}",
            'median score portrait / landscape': f"{np.median(sg[p]):.1f} / {np.median(sg[~p]):.1f}",
            'orientation AUROC': f"{roc_auc_score(p, sg):.3f}",
            'portrait edge heat': f"{edge_heat(grids[p], valid[p]):.2f}",
            'landscape edge heat': f"{edge_heat(grids[~p], valid[~p]):.2f}",
            'image AUROC (test)': f"{roc_auc_score(te['labels'], st):.3f}",
            'pixel AUROC / PRO (test)': '–' if pixel is None else '{:.3f} / {:.3f}'.format(*pixel)}

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--shared', type=Path, default=Path(os.environ.get('ANOMALY_NB_SHARED', Path(__file__).resolve().parents[2] / 'shared')))
    p.add_argument('--cache', type=Path, default=Path('/tmp/orientation'))
    p.add_argument('--data', nargs='+', default=['demo', 'magnetic_tile'], choices=['demo', 'magnetic_tile', 'magnetic_tile_synthetic'])
    p.add_argument('--variants', nargs='+', default=VARIANTS, choices=VARIANTS)
    a = p.parse_args()
    a.cache.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    config = ModelConfig(weights=str(a.shared / 'weights' / 'tf_efficientnet_lite0.in1k.safetensors'), progress=False)
    sets = {}
    if 'demo' in a.data:
        roots = [make_synthetic_category(a.cache / 'data' / f'synthetic{k}', seed=k) if not (a.cache / 'data' / f'synthetic{k}').exists()
                 else a.cache / 'data' / f'synthetic{k}' for k in range(5)]
        lays = [load_layout(r, 0) for r in roots]
        fit_on, held = split_holdout(lays[0].train, 0.1, config.seed)  # as `anomaly-nb demo` fits
        goods = [held] + [l.train + [s for s in l.test if s.label == 0] for l in lays[1:]]
        sets['demo'] = (fit_on, goods, lays[0].test)
    if 'magnetic_tile' in a.data:
        lay = load_layout(a.shared / 'data' / 'magnetic_tile' / 'magnetic_tile', 0)
        sets['magnetic_tile'] = (lay.train, [], lay.test)
    if 'magnetic_tile_synthetic' in a.data:  # no test image: 547 good fitted, 40 held-out good + 80 painted scored
        import sys; sys.path.insert(0, str(Path(__file__).parent))
        from adaptor import synthetic_split
        fit_on, val = synthetic_split(a.shared / 'data' / 'magnetic_tile' / 'magnetic_tile')
        sets['magnetic_tile_synthetic'] = (fit_on, [], val)
    rows = []
    for name, (fit_on, goods, test) in sets.items():
        for v in a.variants:
            rows.append(run(name, fit_on, goods, test, v, config, a.cache))
            print(pd.DataFrame(rows[-1:]).to_markdown(index=False), flush=True)
    print('\nscore vs orientation of good images (0.5: no dependence); edge heat: mean patch score within 3 cells of the '
          'left/right image edge over the rest (median over images)\n')
    print(pd.DataFrame(rows).to_markdown(index=False))

if __name__ == '__main__':
    main()
