"""What the threshold costs: fit seconds of the default model on magnetic_tile with each way of setting it.

    python benchmarks/fit_time.py --shared ../shared [--repeats 1]
    python benchmarks/fit_time.py --shared ../shared --repeats 3 --compare-with /tmp/old   # this code against an older checkout
    python benchmarks/fit_time.py --shared ../shared --repeats 3 --sizes 256 320   # input sizes: fit, predict, state
    python benchmarks/fit_time.py --shared ../shared --repeats 3 --settings '[{"layers": ["blocks.2", "blocks.4"]}, {}]'   # any settings

The default model (PaDiM, resize='box', offline ImageNet weights of tf_efficientnet_lite0) is fitted on all 667 good
training images three ways, interleaved in each round: without a threshold (`holdout=0`), with a held-out tenth
(`holdout=0.1`: fitted on 600, 67 scored) and with the out-of-fold threshold (`holdout=None`: fitted on all 667, five
more detector fits, each scoring its fold from the features fitting extracted). Prints a markdown table of median wall
seconds and the ratio to the fit without a threshold.

`--compare-with DIR` times the default way (`holdout=None`) of the package in DIR (e.g. `git worktree add /tmp/old
<commit>`) and of this checkout instead, alternating in each round, each fit in its own process; it prints both
thresholds, so a change meant to leave them alone can be seen to.
"""
import argparse, json, os, subprocess, sys
from pathlib import Path

import numpy as np

FIT = """import json, sys, anomaly_nb
from anomaly_nb.pipeline import build_model
m = build_model(weights=sys.argv[2], progress=False).fit(sys.argv[1], holdout=None)
print(json.dumps(dict(package=anomaly_nb.__file__, fit_s=m.fit_s, threshold=m.threshold)))"""

def fit_in(code:Path, data:Path, weights:str)->dict:
    "Fit the default model with the package in `code` (run from there, so its `anomaly_nb` is the one imported)."
    out = subprocess.run([sys.executable, '-c', FIT, str(data.resolve()), str(Path(weights).resolve())], cwd=code, capture_output=True, text=True)
    if out.returncode: raise SystemExit(f"the fit in {code} failed:\n{out.stderr[-2000:]}")
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert Path(got['package']).resolve().is_relative_to(code.resolve()), f"{code} imported {got['package']}"
    return got

def compare(old:Path, data:Path, weights:str, repeats:int):
    codes = {'older checkout': old, 'this checkout': Path(__file__).resolve().parents[1]}
    secs, thresholds = {k: [] for k in codes}, {k: set() for k in codes}
    for _ in range(repeats):
        for name, code in codes.items():
            got = fit_in(code, data, weights)
            secs[name].append(got['fit_s']); thresholds[name].add(got['threshold'])
            print(f"{name}: {got['fit_s']:.1f} s, threshold {got['threshold']!r}", flush=True)
    base = np.median(secs['older checkout'])
    print(f"\nmedian of {repeats} round(s), holdout=None\n\n| code | fit s | ratio | threshold |\n|---|---|---|---|")
    for name, v in secs.items(): print(f"| {name} | {np.median(v):.1f} | {np.median(v) / base:.2f} | {sorted(thresholds[name])} |")

WITH_SETTINGS = """import json, sys, time
from anomaly_nb.data import mvtec_samples
from anomaly_nb.pipeline import build_model
m = build_model(weights=sys.argv[2], progress=False, **json.loads(sys.argv[3])).fit(sys.argv[1], holdout=None)
test = mvtec_samples(sys.argv[1])['test']
t0 = time.perf_counter(); pred = m.predict(test); pred_s = time.perf_counter() - t0
_, arrays = m.detector.get_state()
print(json.dumps(dict(fit_s=m.fit_s, per_image_s=pred_s / len(test), state_mb=sum(a.nbytes for a in arrays.values()) / 1e6)))"""

def settings(variants:dict, data:Path, weights:str, repeats:int):
    "Fit (5 folds) and predict time of the default model with each variant's settings, each run in its own process, alternating."
    got = {k: [] for k in variants}
    for _ in range(repeats):
        for k, v in variants.items():
            out = subprocess.run([sys.executable, '-c', WITH_SETTINGS, str(data), weights, json.dumps(v)], capture_output=True, text=True)
            if out.returncode: raise SystemExit(f"the run with {k} failed:\n{out.stderr[-2000:]}")
            got[k].append(json.loads(out.stdout.strip().splitlines()[-1])); print(f"{k}: {got[k][-1]}", flush=True)
    med = {s: {k: float(np.median([g[k] for g in v])) for k in v[0]} for s, v in got.items()}
    base = med[next(iter(variants))]
    print(f"\nmedian of {repeats} round(s); fit = all 667 good images with the 5-fold threshold, predict = the 673 test images\n")
    print("| settings | fit s | ratio | predict s / image | ratio | detector state MB | ratio |\n|---|---|---|---|---|---|---|")
    for s, m in med.items():
        print(f"| {s} | {m['fit_s']:.1f} | {m['fit_s'] / base['fit_s']:.2f} | {m['per_image_s']:.3f} | {m['per_image_s'] / base['per_image_s']:.2f} | "
              f"{m['state_mb']:.0f} | {m['state_mb'] / base['state_mb']:.2f} |")

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--shared', type=Path, default=Path(os.environ.get('ANOMALY_NB_SHARED', Path(__file__).resolve().parents[2] / 'shared')))
    p.add_argument('--repeats', type=int, default=1)
    p.add_argument('--compare-with', type=Path, help='a checkout of an older commit: time its default fit against this one')
    p.add_argument('--sizes', type=int, nargs='+', help='time fit and predict of the default model at these input sizes instead (the first is the base)')
    p.add_argument('--settings', type=json.loads, help='the same for a JSON list of ModelConfig settings ({} = the default; the first is the base)')
    a = p.parse_args()
    data = a.shared / 'data' / 'magnetic_tile' / 'magnetic_tile'
    weights = str(a.shared / 'weights' / 'tf_efficientnet_lite0.in1k.safetensors')
    if a.compare_with: return compare(a.compare_with, data, weights, a.repeats)
    if a.sizes: return settings({f'{s} px': {'size': s} for s in a.sizes}, data, weights, a.repeats)
    if a.settings: return settings({json.dumps(v) if v else 'default': v for v in a.settings}, data, weights, a.repeats)
    from anomaly_nb.pipeline import build_model
    ways = {'no threshold (holdout=0)': 0.0, 'held-out tenth (holdout=0.1)': 0.1, '5 folds (holdout=None, the default)': None}
    secs, load0 = {k: [] for k in ways}, os.getloadavg()[0]
    for _ in range(a.repeats):
        for name, holdout in ways.items():
            m = build_model(weights=weights, progress=False).fit(data, holdout=holdout)
            secs[name].append(m.fit_s)
            print(f"{name}: {m.fit_s:.1f} s, fitted on {m.n_train}, threshold {m.threshold}", flush=True)
    base = np.median(secs['no threshold (holdout=0)'])
    print(f"\nload average {load0:.1f} at the start, {os.getloadavg()[0]:.1f} at the end; median of {a.repeats} round(s)\n")
    print("| threshold | fit s | ratio |\n|---|---|---|")
    for name, v in secs.items(): print(f"| {name} | {np.median(v):.1f} | {np.median(v) / base:.2f} |")

if __name__ == '__main__':
    main()
