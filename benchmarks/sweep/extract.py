"""Step 1 of the geometry/feature sweep behind the defaults (see nbs/05_pipeline.ipynb, "Why the defaults").

    python benchmarks/sweep/extract.py SIZE RESIZE LAYERS      e.g. 256 pad blocks.2,blocks.4,blocks.6

Extracts the raw stage outputs (no pooling) of tf_efficientnet_lite0 for magnetic_tile's train and test
images once, and caches them (float16) with the test masks in $SWEEP_CACHE (default /tmp/q) for
`evaluate.py`, which then tries feature combinations and detectors without running the backbone again.
"""
import sys, time, numpy as np, torch
from pathlib import Path
from anomaly_nb.data import mvtec_samples, ImageDataset, make_loader
from anomaly_nb.features import TimmFeatureExtractor
torch.set_num_threads(2)
import os
SHARED = Path(os.environ.get('ANOMALY_NB_SHARED', Path(__file__).resolve().parents[3] / 'shared'))
ROOT = SHARED / 'data/magnetic_tile/magnetic_tile'
W = SHARED / 'weights/tf_efficientnet_lite0.in1k.safetensors'
CACHE = Path(os.environ.get('SWEEP_CACHE', '/tmp/q')); CACHE.mkdir(parents=True, exist_ok=True)
size = int(sys.argv[1]); resize = sys.argv[2]; layers = sys.argv[3].split(',')
tag = f"{size}_{resize}_{'-'.join(layers)}"
out = CACHE/f'{tag}.npz'
ex = TimmFeatureExtractor('tf_efficientnet_lite0', layers=layers, weights=W, pool=1)
s = mvtec_samples(ROOT)
res = {}
for split in ('train', 'test'):
    ds = ImageDataset(s[split], size, resize)
    feats = {l: [] for l in layers}; masks, valid = [], []
    t0 = time.time()
    for b in make_loader(ds, 32, 1):
        with torch.inference_mode():
            x = ex.normalize(b['image']).contiguous(memory_format=torch.channels_last)
            o = ex.body(x)
        for l in layers: feats[l].append(o[l].float().numpy().astype(np.float16))
        masks.append(b['mask'].numpy()); valid.append(b['valid'].numpy())
    print(split, time.time() - t0, flush=True)
    for l in layers: res[f'{split}:{l}'] = np.concatenate(feats[l])
    if split == 'test':
        res['masks'] = np.packbits(np.concatenate(masks), axis=-1); res['valid'] = np.packbits(np.concatenate(valid), axis=-1)
        res['labels'] = np.array([x.label for x in s['test']]); res['classes'] = np.array([x.defect for x in s['test']])
    else: res['train_valid'] = np.packbits(np.concatenate(valid), axis=-1)
np.savez(out, **res)
print('saved', out)
