"""PaDiM at several input sizes, alone and with their maps averaged, chosen without test images.

    python benchmarks/sweep/scales.py --shared ../shared --sets demo mt --sizes 256 128 192

Issue #19 part 3: large, faint regions (magnetic_tile's *uneven* class) need more context than a 256-px input's
patches see; a smaller input gives each patch a larger share of the image. Each size is fitted with the library's
defaults otherwise (PaDiM, resize='box', crops) on the same images; maps are cut to each image's part, resized to
the first size's part and averaged (Mahalanobis distances over the same 152 channels, so on one scale); the image
score is the combined map's maximum, as the library's.

Sets (no test defect read): `mt`, 547 good magnetic_tile training images fitted, 40 held-out good and 80 with
painted defects scored (`benchmarks/adaptor.py`'s `synthetic_split`; *blob* is the nearest to uneven); `demo`, the
command line's demo data; `mt-large` and the check set `mt-test` as in `context.py`. Prints one JSON line per set
and variant: image AUROC / pooled pixel AUROC / PRO per class.
"""
import argparse, json, os, sys, time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from context import load_set, row_of, set_name  # the same selection sets (this folder is on the path when run as a script)
from anomaly_nb.images import image_part
from anomaly_nb.metrics import metrics_table
from anomaly_nb.pipeline import build_model

def parts(pred)->list[np.ndarray]:
    "Each map cut to its image's part of the input."
    return [image_part(m, v) for m, v in zip(pred.maps, pred.valid)]

def report(name:str, variant:str, ref, masks:list, maps:list):
    row = row_of(metrics_table(ref.labels, np.array([m.max() for m in maps]), masks, maps, ref.classes))
    print(json.dumps({'set': name, 'variant': variant, **row}), flush=True)

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--shared', type=Path, default=Path(os.environ.get('ANOMALY_NB_SHARED', Path(__file__).resolve().parents[3] / 'shared')))
    p.add_argument('--sets', nargs='+', default=['demo', 'mt'], type=set_name, help="as `context.py`'s")
    p.add_argument('--sizes', nargs='+', type=int, default=[256, 128, 192], help='input sizes; the first is the reference frame')
    p.add_argument('--cache', type=Path, default=Path('/tmp/context'))
    a = p.parse_args()
    weights = str(a.shared / 'weights' / 'tf_efficientnet_lite0.in1k.safetensors')
    for name in a.sets:
        fit, val = load_set(name, a.shared, a.cache)
        preds = {}
        for s in a.sizes:
            t0 = time.perf_counter()
            preds[s] = build_model(weights=weights, progress=False, size=s).fit(fit, holdout=0).predict(val)
            print(f"{name}: size {s} fitted and scored in {time.perf_counter() - t0:.0f} s", flush=True)
        ref = preds[a.sizes[0]]
        masks = [image_part(m, v) for m, v in zip(ref.masks, ref.valid)]
        frame = parts(ref)
        up = {s: [cv2.resize(b, (f.shape[1], f.shape[0]), interpolation=cv2.INTER_LINEAR) for f, b in zip(frame, parts(preds[s]))]
              for s in a.sizes}
        for s in a.sizes: report(name, f'{s} alone', ref, masks, up[s])
        for s in a.sizes[1:]: report(name, f'{a.sizes[0]} + {s}, mean', ref, masks, [(x + y) / 2 for x, y in zip(up[a.sizes[0]], up[s])])
        if len(a.sizes) > 2: report(name, 'all sizes, mean', ref, masks, [sum(x) / len(x) for x in zip(*(up[s] for s in a.sizes))])

if __name__ == '__main__':
    main()
