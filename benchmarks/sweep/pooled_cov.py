"""PaDiM with covariances pooled over neighbouring grid positions, chosen without test images.

    python benchmarks/sweep/pooled_cov.py --shared ../shared --sets mt demo mt-large --radii 0 1 2 --fit-counts 0 100 30

Issue #19 part 3. PaDiM fits one Gaussian per grid position from one row per training image (two with the aspect
crops): 547-667 rows for 152 channels on magnetic_tile, and a factory often has 30-200 good images, where Ledoit-Wolf
shrinks each covariance hard towards a multiple of the identity. Neighbouring cells see the same kind of surface, so
their covariances can be pooled: `cov`, each position keeps its own mean and takes the within-position scatter of
its (2r + 1)^2 neighbourhood (each neighbour's rows about that neighbour's own mean, the classical pooled covariance;
edges replicated, so every position sums as many rows); `all`, mean and covariance both from the neighbourhood's
rows (one Gaussian for the neighbourhood). The pooling is a box filter over the grid of the mergeable sums
(`statistics.Moments`), so it costs a few array additions, not more rows.

Sets (as `context.py`): `mt`, 547 good magnetic_tile training images fitted, 40 held-out good and 80 painted ones
scored; `mt-large`, the same split with large regions of changed texture; `demo`, the command line's synthetic data;
`mt-test` only checks a choice afterwards. `--fit-counts N` fits on a seeded subset of N of the fitting images (0:
all) to see the small-data case. Prints one JSON line per set, count, radius and mode.
"""
import argparse, json, os, sys, time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from context import SETS, load_set, set_name, table
from anomaly_nb.pipeline import build_model
from anomaly_nb.statistics import Moments, PositionalGaussianDetector, _moved, moments_of

POOL = {'radius': 0, 'mode': 'cov'}

def box_sum(a:np.ndarray, h:int, w:int, r:int)->np.ndarray:
    "Sum of (P, ...) per-position arrays over each position's (2r+1)^2 grid neighbourhood, edges replicated."
    g = a.reshape(h, w, *a.shape[1:])
    pad = np.pad(g, [(r, r), (r, r)] + [(0, 0)] * (a.ndim - 1), mode='edge')
    out = np.zeros_like(g)
    for dy in range(2 * r + 1):
        for dx in range(2 * r + 1): out += pad[dy:dy + h, dx:dx + w]
    return out.reshape(a.shape)

def pooled(m:Moments, r:int, mode:str)->Moments:
    "Moments of each position's neighbourhood: `cov` keeps the own mean, `all` pools the mean too."
    P = m.shape[0]; h = w = int(round(P ** 0.5)); assert h * w == P, f"square grids only here, got {P} positions"
    k = (2 * r + 1) ** 2
    if mode == 'cov':  # within-position sums: each neighbour about its own mean
        return Moments(m.n * k, m.mean, box_sum(m.scatter, h, w, r), box_sum(m.m3, h, w, r), box_sum(m.m4, h, w, r))
    # all rows of the neighbourhood about their common mean: shift each neighbour's sums to it (Moments.merge's algebra)
    mean = box_sum(m.mean, h, w, r) / k
    g = lambda a: np.pad(a.reshape(h, w, *a.shape[1:]), [(r, r), (r, r)] + [(0, 0)] * (a.ndim - 1), mode='edge')
    gm, gS, g3, g4 = g(m.mean), g(m.scatter), g(m.m3), g(m.m4)
    mean_g = mean.reshape(h, w, -1)
    S, q, f = np.zeros_like(m.scatter).reshape(h, w, *m.scatter.shape[1:]), np.zeros((h, w, m.shape[1])), np.zeros((h, w))
    for dy in range(2 * r + 1):
        for dx in range(2 * r + 1):
            sub = Moments(m.n, gm[dy:dy + h, dx:dx + w].reshape(P, -1), gS[dy:dy + h, dx:dx + w].reshape(P, *m.scatter.shape[1:]),
                          g3[dy:dy + h, dx:dx + w].reshape(P, -1), g4[dy:dy + h, dx:dx + w].reshape(P))
            dl = mean - sub.mean
            q3, q4 = _moved(sub, dl)
            S += (sub.scatter + m.n * dl[:, :, None] * dl[:, None, :]).reshape(S.shape)
            q += q3.reshape(q.shape); f += q4.reshape(f.shape)
    return Moments(m.n * k, mean, S.reshape(m.scatter.shape), q.reshape(m.m3.shape), f.reshape(P))

def _fit(self:PositionalGaussianDetector, X:np.ndarray):
    "PaDiM's fit through its moments, pooled as POOL says (radius 0: the library's fit, up to round-off)."
    n, P, d = X.shape
    self.train_ = X  # kept (a reference) to refit with other pooling
    m = moments_of(X if (ch := self._pick_channels(d)) is None else X[..., ch], self.FIT_BLOCK_BYTES)
    if POOL['radius']: m = pooled(m, POOL['radius'], POOL['mode'])
    self.fit_moments(m, d)

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--shared', type=Path, default=Path(os.environ.get('ANOMALY_NB_SHARED', Path(__file__).resolve().parents[3] / 'shared')))
    p.add_argument('--sets', nargs='+', default=['mt', 'demo'], type=set_name)
    p.add_argument('--radii', type=int, nargs='+', default=[0, 1])
    p.add_argument('--modes', nargs='+', default=['cov'], choices=['cov', 'all'])
    p.add_argument('--fit-counts', type=int, nargs='+', default=[0], help='fit on a seeded subset of this many images (0: all)')
    p.add_argument('--cache', type=Path, default=Path('/tmp/context'))
    a = p.parse_args()
    PositionalGaussianDetector._fit = _fit
    weights = str(a.shared / 'weights' / 'tf_efficientnet_lite0.in1k.safetensors')
    for s in a.sets:
        fit_all, val = load_set(s, a.shared, a.cache)
        if not isinstance(fit_all, list):
            from anomaly_nb.data import mvtec_samples
            fit_all = mvtec_samples(fit_all)['train']
        for count in a.fit_counts:
            fit = fit_all if not count or count >= len(fit_all) else [fit_all[i] for i in sorted(np.random.default_rng(0).choice(len(fit_all), count, replace=False))]
            model = None
            for r in a.radii:
                for mode in (a.modes if r else ['cov']):
                    POOL.update(radius=r, mode=mode)
                    t0 = time.perf_counter()
                    if model is None:  # features once per set and count: refit the detector alone on them
                        model = build_model(weights=weights, progress=False).fit(fit, holdout=0)
                    else:
                        model.detector.fit(model.detector.train_)
                    fit_s = time.perf_counter() - t0
                    t = table(model.predict(val))
                    row = {c: [round(float(v), 3) for v in t.loc[c, ['image_auroc', 'pixel_auroc', 'pro']]] for c in t.index}
                    print(json.dumps({'set': s, 'images': len(fit), 'radius': r, 'mode': mode, 'fit_s': round(fit_s, 1), **row}), flush=True)

if __name__ == '__main__':
    main()
