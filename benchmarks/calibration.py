"""Does the threshold keep its promise? False alarms on unseen good images at `--fpr`, per rule, on magnetic_tile.

    python benchmarks/calibration.py [--shared ../shared] [--cache /tmp/orientation] [--seeds 5] [--fpr 0.01] [--resize box]

The default model (PaDiM, aspect kept, the default input size, offline ImageNet weights; `--resize` chooses the geometry, the library's
default when not given) is fitted as `fit(holdout=0.1)` fits it (with `'box'`, on the fitted images and one crop of
random aspect of each, keyed by the split's seed): a seeded 10 % of train/good (67 images) is held out, the detector is fitted on the other 600, and the held-out
images' scores set the threshold. For each of `--seeds` splits, every threshold rule is applied to the same held-out
scores and judged on the 285 good test images (false alarms) and the 388 defect test images (recall). The rules:

- `robust_lognormal` (before): a Gaussian fitted to the log-scores with median and MAD.
- `exponential_tail` (now the default below 10 expected tail images, `thresholds.tail_threshold`): an exponential tail
  fitted to the top fifth of the held-out scores, its scale from their median excess.
- `held-out max`: the largest held-out score (a conformal bound: on average at most 1 / (n + 1) of good images above).

The rule was chosen on good training images only (fit on 400, held out 67/133, false alarms counted on the remaining
good training images); the test images only check it. Recall at the same false-alarm rate does not depend on the rule
(one detector, one ROC curve): the table also gives the recall the detector reaches at each rule's false-alarm rate.
Prints one markdown table: medians over the splits, the range in brackets. Features are cached under `--cache`
(shared with `benchmarks/orientation.py`).
"""
import argparse, os
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from anomaly_nb.pipeline import AnomalyModel, ModelConfig
from anomaly_nb.layouts import load_layout
from anomaly_nb.thresholds import (split_holdout, robust_threshold, normal_threshold, threshold_info, tail_threshold, rate_interval,
                                   fold_indices, conformal_threshold)
from anomaly_nb.maps import image_scores

def features(model, samples, path:Path, crop_seed:int|None=None)->dict:
    "Features, valid masks and labels of `samples` (or of their crops), as the model's loader and forward pass give them (cached at `path`)."
    if path.exists(): return dict(np.load(path))
    feats, valid, osz = [], [], []
    if model.config.resize == 'box': model._input_grid()
    with torch.no_grad():
        for b in model._loader(samples, crop_seed=crop_seed):
            feats.append(model._forward(b).float().numpy()); valid.append(b['valid'].numpy()); osz.append(b['orig_size'].numpy())
    d = dict(feats=np.concatenate(feats), valid=np.concatenate(valid), osz=np.concatenate(osz), labels=np.array([s.label for s in samples]))
    np.savez(path, **d)
    return d

def scores(model, d:dict, idx=None)->np.ndarray:
    "Image scores as `AnomalyModel.predict` makes them."
    f, v = (d['feats'], d['valid']) if idx is None else (d['feats'][idx], d['valid'][idx])
    return image_scores(model._maps(model._score(torch.from_numpy(f)), v), model.config.topk, v)

RULES = {'robust_lognormal (before)': robust_threshold,
         'exponential_tail (now)': lambda s, fpr: normal_threshold(s, fpr)[0],
         'held-out max': lambda s, fpr: float(np.max(s))}

def recall_at(good:np.ndarray, bad:np.ndarray, far:float)->float:
    "Recall at the lowest threshold whose false-alarm rate on `good` is at most `far`."
    k = int(round(far * len(good)))  # good images allowed above the threshold
    return float((bad > np.sort(good)[len(good) - k - 1]).mean())

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--shared', type=Path, default=Path(os.environ.get('ANOMALY_NB_SHARED', Path(__file__).resolve().parents[2] / 'shared')))
    p.add_argument('--cache', type=Path, default=Path('/tmp/orientation'))
    p.add_argument('--seeds', type=int, default=5)
    p.add_argument('--fpr', type=float, default=0.01)
    p.add_argument('--holdout', type=float, default=0.1)
    p.add_argument('--resize', choices=('box', 'pad', 'stretch'), default=ModelConfig().resize)
    p.add_argument('--cv', type=int, default=0, metavar='K',
                   help='also two K-fold rules: every fitted image scored by a detector fitted without its fold sets the threshold '
                        '(exponential tail, and conformal quantile, of all of them), judged with the detector fitted on all of them')
    p.add_argument('--judge-on-train', type=int, default=0, metavar='N',
                   help='choose without test images: N good training images (seeded) judge the false alarms instead of the good '
                        'test images, and the held-out share is taken from the rest')
    a = p.parse_args()
    a.cache.mkdir(parents=True, exist_ok=True)
    config = ModelConfig(weights=str(a.shared / 'weights' / 'tf_efficientnet_lite0.in1k.safetensors'), resize=a.resize, progress=False)
    lay = load_layout(a.shared / 'data' / 'magnetic_tile' / 'magnetic_tile', 0)
    model = AnomalyModel(config)
    tag = {'pad': 'padded'}.get(a.resize, a.resize)  # 'padded': the cache names of the first runs
    tr = features(model, lay.train, a.cache / f'magnetic_tile_train_{tag}.npz')
    te = features(model, lay.test, a.cache / f'magnetic_tile_test_{tag}.npz')
    res = {k: [] for k in RULES}
    for seed in range(a.seeds):
        pool, judge_i = list(range(len(lay.train))), []
        if a.judge_on_train:  # good training images judge; fit and hold out among the others
            judge_i = sorted(np.random.default_rng(1000 + seed).choice(len(pool), a.judge_on_train, replace=False).tolist())
            pool = [i for i in pool if i not in set(judge_i)]
        fit_i, held_i = (lambda f, h: ([pool[i] for i in f], [pool[i] for i in h]))(*split_holdout(list(range(len(pool))), a.holdout, seed))
        model = AnomalyModel(config.replace(seed=seed))
        fitted = tr['feats'][fit_i]
        if model._adds_crops([lay.train[i] for i in fit_i]):  # as `fit` does: the fitted images' crops, keyed by the seed
            crops = features(model, lay.train, a.cache / f'magnetic_tile_train_crops{seed}_{tag}.npz', crop_seed=seed)
            fitted = np.concatenate([fitted, crops['feats'][fit_i]])
        model.detector.fit(model._detector_input(fitted))
        held, test = scores(model, tr, held_i), scores(model, te)
        good, bad = (scores(model, tr, judge_i) if judge_i else test[te['labels'] == 0]), test[te['labels'] == 1]
        for name, rule in RULES.items():
            t = rule(held, a.fpr)
            far = float((good > t).mean())
            k = int((held > t).sum())
            lo, hi = threshold_info(held, a.fpr)[1]['fpr_interval'] if 'now' in name else (np.nan, np.nan)
            res[name].append((far, float((bad > t).mean()), recall_at(good, bad, far), k / len(held), hi))
        if a.cv:  # K-fold: the threshold from every image of the pool, each scored without its fold
            crops = (features(model, lay.train, a.cache / f'magnetic_tile_train_crops{seed}_{tag}.npz', crop_seed=seed)
                     if model._adds_crops([lay.train[i] for i in pool]) else None)
            def fitted_on(idx):
                m = AnomalyModel(config.replace(seed=seed))
                f = tr['feats'][idx] if crops is None else np.concatenate([tr['feats'][idx], crops['feats'][idx]])
                m.detector.fit(m._detector_input(f)); return m
            folds = [[pool[i] for i in f] for f in fold_indices(len(pool), a.cv, seed)]  # the library's folds
            cv = np.concatenate([scores(fitted_on(sorted(set(pool) - set(f))), tr, f) for f in folds])
            whole = fitted_on(pool)
            test = scores(whole, te)
            good, bad = (scores(whole, tr, judge_i) if judge_i else test[te['labels'] == 0]), test[te['labels'] == 1]
            for rule, t in ((f'{a.cv}-fold, exponential tail of all {len(cv)}', tail_threshold(cv, a.fpr)),
                            (f'{a.cv}-fold, conformal quantile of all {len(cv)}', conformal_threshold(cv, a.fpr))):
                far = float((good > t).mean())
                res.setdefault(rule, []).append((far, float((bad > t).mean()), recall_at(good, bad, far), float((cv > t).mean()),
                                                 rate_interval(int((cv > t).sum()), len(cv))[1]))
        print(f"split {seed}: {len(fit_i)} fitted, {len(held)} held out, {len(good)} good images judged", flush=True)
    rows = []
    for name, v in res.items():
        v = np.array(v)
        f = lambda j, pct=True: (f"{np.median(v[:, j]):.1%} ({v[:, j].min():.1%}–{v[:, j].max():.1%})" if pct else '')
        judged = f'{a.judge_on_train} good training images (not fitted)' if a.judge_on_train else f'{int((te["labels"] == 0).sum())} good test images'
        rows.append({'rule': name, f'false alarms on {judged}': f(0),
                     f'recall on {int(te["labels"].sum())} defect images': f(1), 'recall of the ROC at that false-alarm rate': f(2),
                     'held-out images above': f(3),
                     'upper end of the supported interval (95 %)': f(4) if np.isfinite(v[:, 4]).all() else '–'})
    print(f"\nmagnetic_tile, resize={a.resize!r}, target false-alarm rate {a.fpr:.0%}, {a.seeds} held-out splits of {a.holdout:.0%}: median (range)\n")
    print(pd.DataFrame(rows).to_markdown(index=False))

if __name__ == '__main__':
    main()
