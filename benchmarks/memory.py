"""Where the memory of fitting and evaluating goes: resident memory after each stage, in one process.

    python benchmarks/memory.py [--backbone tf_efficientnet_lite0] [--weights PATH|random] [--detector padim]
                                [--option max_channels=100 ...] [--data ../shared/data/magnetic_tile/magnetic_tile]

Runs `build_model(...).fit(category)` and `.evaluate(category)` once, hooking the detector's `fit` to
read the process's memory just before and after it. Prints one markdown table: for each stage the
resident set at its end and the peak so far (`ru_maxrss`). The peak after "features extracted" is set
by extraction (the training features and whatever extraction held beside them); the next row adds the
detector's fit; the last, evaluation (maps of every test image and the metrics). To compare two
versions of the package, run the same command with `PYTHONPATH` pointing at each checkout.
"""
import argparse
from pathlib import Path

import anomaly_nb
from anomaly_nb.cli import parse_options
from anomaly_nb.core import peak_rss_mb
from anomaly_nb.pipeline import build_model

HERE = Path(__file__).resolve().parent


def rss_mb()->float:
    "Resident memory of this process now, in MB (Linux's /proc; NaN elsewhere)."
    try: return next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmRSS:')) / 2**10
    except OSError: return float('nan')


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--data', type=Path, default=HERE.parent.parent/'shared'/'data'/'magnetic_tile'/'magnetic_tile')
    p.add_argument('--weights', default=str(HERE.parent.parent/'shared'/'weights'/'tf_efficientnet_lite0.in1k.safetensors'))
    p.add_argument('--backbone', default='tf_efficientnet_lite0')
    p.add_argument('--detector', default='padim')
    p.add_argument('--option', action='append', default=[], help='detector option key=value (JSON values)')
    a = p.parse_args()
    opts = parse_options(a.option)
    rows = []
    def note(stage, extra=''): rows.append((stage, rss_mb(), peak_rss_mb(), extra))
    note('imports')
    model = build_model(a.backbone, weights=a.weights, detector=a.detector, progress=False, **opts)
    note('model built')
    fit = model.detector.fit
    def hooked(X):
        note('features extracted', f'detector input {X.nbytes / 2**20:,.0f} MB')
        out = fit(X); note('detector fitted'); return out
    model.detector.fit = hooked
    model.fit(a.data)
    note('fit returned', f'fit {model.fit_s:.1f} s')
    table, pred = model.evaluate(a.data)
    r = table.loc['all']
    note('evaluated', f"{len(pred.samples)} test images; AUROC {r['image_auroc']:.3f} / {r['pixel_auroc']:.3f}, PRO {r['pro']:.3f}")
    print(f"{a.backbone} ({a.weights if a.weights in ('random', 'pretrained') else Path(a.weights).name}), {a.detector} {opts or ''}, "
          f"{a.data.name}; anomaly_nb from {Path(anomaly_nb.__file__).parent}\n")
    print('| stage | RSS (MB) | peak RSS so far (MB) | |')
    print('|---|---|---|---|')
    for stage, rss, peak, extra in rows: print(f'| {stage} | {rss:,.0f} | {peak:,.0f} | {extra} |')


if __name__ == '__main__': main()
