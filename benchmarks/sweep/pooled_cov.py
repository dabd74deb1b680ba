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
from functools import reduce
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from context import load_set, row_of, set_name, table
from anomaly_nb.pipeline import build_model
from anomaly_nb.statistics import Moments, PositionalGaussianDetector, moments_of

POOL = {'radius': 0, 'mode': 'cov'}

def neighbours(m:Moments, r:int)->list[Moments]:
    "For each of the (2r+1)^2 offsets, the moments of every position's neighbour at that offset (grid edges replicated)."
    P = m.shape[0]; h = w = int(round(P ** 0.5)); assert h * w == P, f"square grids only here, got {P} positions"
    grid = lambda a: np.pad(a.reshape(h, w, *a.shape[1:]), [(r, r), (r, r)] + [(0, 0)] * (a.ndim - 1), mode='edge')
    g = [grid(a) for a in (m.mean, m.scatter, m.m3, m.m4)]
    return [Moments(m.n, *(a[dy:dy + h, dx:dx + w].reshape(P, *a.shape[2:]) for a in g))
            for dy in range(2 * r + 1) for dx in range(2 * r + 1)]

def pooled(m:Moments, r:int, mode:str)->Moments:
    "Moments of each position's neighbourhood: `cov` keeps the own mean (sums about each neighbour's own mean), `all` pools the mean too."
    subs = neighbours(m, r)
    if mode == 'all': return reduce(Moments.merge, subs)  # all rows of the neighbourhood about their common mean, exactly
    return Moments(m.n * len(subs), m.mean, *(sum(getattr(x, k) for x in subs) for k in ('scatter', 'm3', 'm4')))

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
                    row = row_of(table(model.predict(val)))
                    print(json.dumps({'set': s, 'images': len(fit), 'radius': r, 'mode': mode, 'fit_s': round(fit_s, 1), **row}), flush=True)

if __name__ == '__main__':
    main()
