"""Draw the website's home picture, nbs/images/home.png: four Magnetic Tile defects, their ground truth and
the anomaly maps of the default model (PaDiM on frozen `tf_efficientnet_lite0` ImageNet features), fitted
on the good training images.

    python tools/home_picture.py                     # data and weights from ../shared (or $ANOMALY_NB_SHARED)
    python tools/home_picture.py --out other.png

`nbdev.yml` names the picture (`website: image:`); the offline site copies it to `static/home.png` and uses
the PNG's `Description` text, written here, as its caption. The test images are the first (by file name)
of four defect classes, not the best-scored ones.
"""
import argparse
import io
import os
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ('blowhole', 'break', 'crack', 'fray')


def main(argv=None):
    shared = Path(os.environ.get('ANOMALY_NB_SHARED', ROOT.parent / 'shared'))
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--data', type=Path, default=shared / 'data' / 'magnetic_tile' / 'magnetic_tile')
    ap.add_argument('--weights', type=Path, default=shared / 'weights' / 'tf_efficientnet_lite0.in1k.safetensors')
    ap.add_argument('--out', type=Path, default=ROOT / 'nbs' / 'images' / 'home.png')
    a = ap.parse_args(argv)
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from PIL import Image, PngImagePlugin
    from anomaly_nb.data import mvtec_samples
    from anomaly_nb.pipeline import build_model

    model = build_model('tf_efficientnet_lite0', weights=str(a.weights), detector='padim', progress=False)
    model.fit(a.data)
    test = mvtec_samples(a.data)['test']
    picks = [sorted((s for s in test if s.defect == c), key=lambda s: s.path.name)[0] for c in CLASSES]
    pred = model.predict(picks)
    lo, hi = np.percentile(pred.maps[pred.valid], [50, 99.9])  # one colour scale for the four maps
    fig, axes = plt.subplots(2, len(picks), figsize=(2.6 * len(picks), 5.4))
    from anomaly_nb.images import load_image, resize_pair
    for j, s in enumerate(picks):
        img, _, valid = resize_pair(load_image(s.path), None, model.config.size, model.config.resize)[:3]
        rows, cols = np.flatnonzero(valid.any(1)), np.flatnonzero(valid.any(0))
        crop = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
        im = np.asarray(img)[crop]
        for ax in axes[:, j]: ax.imshow(im, cmap='gray'); ax.set_xticks([]); ax.set_yticks([])
        axes[0, j].contour(pred.masks[j][crop], levels=[0.5], colors='red', linewidths=1.2)
        axes[0, j].set_title(f"{s.defect}", fontsize=11)
        axes[1, j].imshow(np.clip((pred.maps[j][crop] - lo) / (hi - lo), 0, 1), cmap='inferno', alpha=0.55)
    axes[0, 0].set_ylabel('defect (red: ground truth)', fontsize=10)
    axes[1, 0].set_ylabel('anomaly map', fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format='png', dpi=90)
    plt.close(fig)
    meta = PngImagePlugin.PngInfo()
    meta.add_text('Description', f"Four defects of the Magnetic Tile test set (first image of each class) with their ground "
                                 f"truth, and the anomaly maps of the default model, PaDiM on frozen tf_efficientnet_lite0 "
                                 f"features fitted on the {model.n_train} good training images.")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    Image.open(io.BytesIO(buf.getvalue())).save(a.out, pnginfo=meta, optimize=True)
    print(f"wrote {a.out.relative_to(ROOT) if ROOT in a.out.resolve().parents else a.out}")


if __name__ == '__main__':
    main()
