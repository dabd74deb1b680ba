"""What the threshold costs: fit seconds of the default model on magnetic_tile with each way of setting it.

    python benchmarks/fit_time.py --shared ../shared [--repeats 1]

The default model (PaDiM, resize='box', offline ImageNet weights of tf_efficientnet_lite0) is fitted on all 667 good
training images three ways, interleaved in each round: without a threshold (`holdout=0`), with a held-out tenth
(`holdout=0.1`: fitted on 600, 67 scored) and with the out-of-fold threshold (`holdout=None`: fitted on all 667, five
more detector fits and every image scored once more). Prints a markdown table of median wall seconds and the ratio
to the fit without a threshold.
"""
import argparse, os, time
from pathlib import Path

import numpy as np
from anomaly_nb.pipeline import build_model

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--shared', type=Path, default=Path(os.environ.get('ANOMALY_NB_SHARED', Path(__file__).resolve().parents[2] / 'shared')))
    p.add_argument('--repeats', type=int, default=1)
    a = p.parse_args()
    data = a.shared / 'data' / 'magnetic_tile' / 'magnetic_tile'
    weights = str(a.shared / 'weights' / 'tf_efficientnet_lite0.in1k.safetensors')
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
