"""What bounding LUNAR's training sample costs: metrics and fit time against the sample size.

    python benchmarks/lunar_sample.py [--sizes 5000 10000 20000 40000] [--shared ../shared]

PyOD's LUNAR cannot take the full patch memory bank (683,000 rows for magnetic_tile's 667
training images at 32x32 patches), so `anomaly_nb.outliers.lunar` fits on a seeded random
sample of `max_samples` rows. Features are extracted once; each sample size is then fitted and
scored on the whole test split. Prints one table row per size.
"""
import argparse, time
from pathlib import Path

import numpy as np

from anomaly_nb.data import mvtec_samples
from anomaly_nb.outliers import lunar
from anomaly_nb.maps import anomaly_maps, image_scores
from anomaly_nb.metrics import image_auroc, pixel_auroc, pro_score
from anomaly_nb.pipeline import build_model, to_rows


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--sizes', type=int, nargs='+', default=[5000, 10000, 20000, 40000])
    p.add_argument('--shared', type=Path, default=Path(__file__).resolve().parents[2] / 'shared')
    a = p.parse_args()
    cat = a.shared / 'data' / 'magnetic_tile' / 'magnetic_tile'
    weights = a.shared / 'weights' / 'tf_efficientnet_lite0.in1k.safetensors'
    model = build_model('tf_efficientnet_lite0', weights=weights, detector='gaussian', progress=False)
    s = mvtec_samples(cat)
    train = to_rows(model.extractor.extract(model._loader(s['train']), progress=False))
    test_loader = model._loader(s['test'])
    test = model.extractor.extract(test_loader, progress=False)
    masks = np.concatenate([b['mask'].numpy() for b in test_loader])
    labels = np.array([x.label for x in s['test']])
    n, _, h, w = test.shape
    test = to_rows(test)
    print(f"magnetic_tile: {len(train):,} training rows, {len(test):,} test rows of {train.shape[1]} values")
    print(f"{'max_samples':>11} {'fit_s':>7} {'score_s':>8} {'image_auroc':>11} {'pixel_auroc':>11} {'pro':>6}")
    for size in a.sizes:
        det = lunar(max_samples=size, seed=0)
        t0 = time.perf_counter(); det.fit(train); fit_s = time.perf_counter() - t0
        t0 = time.perf_counter(); sc = det.score(test); score_s = time.perf_counter() - t0
        maps = anomaly_maps(sc.reshape(n, h, w), 256, 4.0)
        print(f"{size:>11,} {fit_s:7.1f} {score_s:8.1f} {image_auroc(labels, image_scores(maps)):11.3f} "
              f"{pixel_auroc(masks, maps):11.3f} {pro_score(masks, maps):6.3f}", flush=True)


if __name__ == '__main__':
    main()
