"""Does an image's score depend on its shape? Score vs orientation of good images, on the demo data and magnetic_tile.

    python benchmarks/orientation.py [--shared ../shared] [--cache /tmp/orientation] [--data demo magnetic_tile]

The default model (PaDiM, aspect kept by padding, 256 px, offline ImageNet weights of `tf_efficientnet_lite0`) is
fitted on the good training images of each data set and scores good images of both orientations: for the demo, the
sample category `anomaly-nb demo` makes (seed 0, fitted on the 54 images the demo fits on; 58 of its 60 training
images are landscape): its 6 held-out and 20 test good images, plus the good images of four more seeds of the same generator, so that there are enough portrait ones to count; for magnetic_tile, the 285 good
test images (square ones left out). Printed, as one markdown table: how many portrait/landscape good images, their
median scores, the AUROC of score vs orientation (0.5: the score says nothing about the shape; the goal is 0.5 ± 0.1),
the image AUROC on the test split, and where the portrait images' maps are hot (mean patch score within 3 grid cells of
the image's left/right edge against the rest of the image).

Two ways of giving the network a padded image are compared side by side:

- `padded`: the library as it is: the resized image is edge-padded to 256 x 256 and the network sees the padding.
- `cropped` (a prototype, not in the library): the network runs on the image's own pixels only (the valid box, rounded
  inwards to the 8-pixel grid), and the feature grid is padded afterwards by repeating its edge cells, so that every
  image's border looks to the network like the border of the input.

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

GRID = 8  # stride of the finest feature grid of the default backbone

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

def features(model, samples, variant:str, path:Path)->dict:
    "Features, valid masks, original sizes and labels of `samples` (cached at `path`)."
    if path.exists(): return dict(np.load(path))
    feats, valid, osz = [], [], []
    with torch.no_grad():
        for b in model._loader(samples):
            f = model.extractor(b['image']) if variant == 'padded' else cropped_features(model, b['image'], b['valid'])
            feats.append(f.float().numpy()); valid.append(b['valid'].numpy()); osz.append(b['orig_size'].numpy())
    d = dict(feats=np.concatenate(feats), valid=np.concatenate(valid), osz=np.concatenate(osz),
             labels=np.array([s.label for s in samples]))
    np.savez(path, **d)
    return d

def scores(model, d:dict)->tuple[np.ndarray, np.ndarray]:
    "Image scores as `AnomalyModel.predict` makes them, and the patch-score grids."
    f = d['feats']
    s = model._score(torch.from_numpy(f))
    maps = anomaly_maps(s, model.config.size, model.config.sigma)
    return image_scores(maps, model.config.topk, d['valid']), s

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

def run(name:str, fit_on:list, goods:list, test:list, variant:str, config:ModelConfig, cache:Path)->dict:
    model = AnomalyModel(config)
    tr = features(model, fit_on, variant, cache / f'{name}_train_{variant}.npz')
    model.detector.fit(model._detector_input(tr['feats']))
    model.grid = tuple(tr['feats'].shape[2:])
    te = features(model, test, variant, cache / f'{name}_test_{variant}.npz')
    g = [features(model, s, variant, cache / f'{name}_good{i}_{variant}.npz') for i, s in enumerate(goods)]
    g = [{k: te[k][te['labels'] == 0] for k in ('feats', 'valid', 'osz', 'labels')}] + g  # the test split's good images first
    g = {k: np.concatenate([x[k] for x in g]) for k in ('feats', 'valid', 'osz', 'labels')}
    sg, grids = scores(model, g)
    st, _ = scores(model, te)
    keep = g['osz'][:, 0] != g['osz'][:, 1]  # square images have no orientation
    p = portrait(g['osz'])[keep]
    sg, grids, valid = sg[keep], grids[keep], g['valid'][keep]
    return {'data': name, 'network sees': variant, 'good portrait / landscape': f"{p.sum()} / {(~p).sum()}",
            'median score portrait / landscape': f"{np.median(sg[p]):.1f} / {np.median(sg[~p]):.1f}",
            'orientation AUROC': f"{roc_auc_score(p, sg):.3f}",
            'portrait edge heat': f"{edge_heat(grids[p], valid[p]):.2f}",
            'landscape edge heat': f"{edge_heat(grids[~p], valid[~p]):.2f}",
            'image AUROC (test)': f"{roc_auc_score(te['labels'], st):.3f}"}

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--shared', type=Path, default=Path(os.environ.get('ANOMALY_NB_SHARED', Path(__file__).resolve().parents[2] / 'shared')))
    p.add_argument('--cache', type=Path, default=Path('/tmp/orientation'))
    p.add_argument('--data', nargs='+', default=['demo', 'magnetic_tile'], choices=['demo', 'magnetic_tile'])
    p.add_argument('--variants', nargs='+', default=['padded', 'cropped'], choices=['padded', 'cropped'])
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
