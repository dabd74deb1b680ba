"""Context beyond a patch for PaDiM: brightness channels and other map settings, chosen without test images.

    python benchmarks/sweep/context.py --shared ../shared --sets mt demo \
        --variants '[[null,1,{}],["mean",1,{}],["mean+wide",1,{}],["mean+wide+std",1,{}],["mean+wide",3,{}],["mean+wide+std",3,{}]]'
    python benchmarks/sweep/context.py --shared ../shared --sets mt demo \
        --variants '[[null,1,{"pool":5}],[null,1,{"sigma":6}],[null,1,{"sigma":8}],[null,1,{"topk":50}],[null,1,{"topk":0.01}]]'

Issue #19 part 3: inside an *uneven* magnetic_tile image (a region ground or lit differently from the rest of its
tile) PaDiM's patch features see texture, not brightness relative to the tile. This prototype appends channels to
the library's patch features (a patch of `TimmFeatureExtractor.patch_features`, so boxes, crops, PaDiM and the maps
are the library's own): `mean`, each grid cell's mean gray level less the image's median cell; `wide`, the same
averaged over 5 x 5 cells; `std`, the gray level's standard deviation within the cell. Each is scaled to about the
features' own spread (x35, x35, x170: gray levels in [0, 1] against features of variance ~4.7, so that Ledoit-Wolf
shrinkage towards the mean variance does not drown them), times the variant's factor.

Sets: `mt`, 547 good magnetic_tile training images fitted, 40 held-out good and 80 with painted defects scored
(`benchmarks/adaptor.py`'s `synthetic_split`; its *blob* class is the nearest to uneven); `demo`, the command line's
demo data (synthetic, test split); `mt-large`, the `mt` split with large regions of changed texture painted instead
(`paint_large`: 25-60 % of the tile smoother or rougher, lit a little differently). None of them reads a test defect: choices are made on them. `mt-test` (all 667 good
training images fitted, the 673 test images scored) only checks a choice afterwards. Prints one JSON line per set and
variant: image AUROC / pooled pixel AUROC / PRO per class. `--relative-maps` adds, for each variant, the same maps less
each image's median (image scores unchanged): a per-image baseline for the pooled pixel metrics.
"""
import argparse, json, os, sys, time
from pathlib import Path

import numpy as np
import torch, torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from adaptor import synthetic_split
from anomaly_nb import features as fm
from anomaly_nb.data import make_synthetic_category
from anomaly_nb.images import image_part
from anomaly_nb.metrics import metrics_table
from anomaly_nb.pipeline import build_model, evaluation_samples

_patch_features = fm.TimmFeatureExtractor.patch_features
CONTEXT = {'channels': None, 'factor': 1.0}

def with_context(self, x:torch.Tensor)->torch.Tensor:
    "The library's patch features of a batch of boxes, with the brightness channels CONTEXT asks for appended."
    f = _patch_features(self, x)
    names = CONTEXT['channels']
    if not names: return f
    gray = x.to(f.device).float().mean(1, keepdim=True)
    cell = F.adaptive_avg_pool2d(gray, f.shape[-2:])
    median = cell.flatten(1).median(1).values.view(-1, 1, 1, 1)
    extra = []
    if 'mean' in names: extra.append(35 * (cell - median))
    if 'wide' in names: extra.append(35 * (F.avg_pool2d(cell, 5, stride=1, padding=2, count_include_pad=False) - median))
    if 'std' in names: extra.append(170 * (F.adaptive_avg_pool2d(gray ** 2, f.shape[-2:]) - cell ** 2).clamp_min(0).sqrt())
    out = torch.cat([f, (torch.cat(extra, 1) * CONTEXT['factor']).to(f.dtype)], 1)
    return out.contiguous(memory_format=torch.channels_last)

def table(pred, relative:bool=False):
    "Per-class metrics as `AnomalyModel.evaluate` computes them (regions cut out whole); `relative`: maps less their median."
    maps = [image_part(m, v) for m, v in zip(pred.maps, pred.valid)]
    if relative: maps = [m - np.median(m) for m in maps]
    masks = [image_part(m, v) for m, v in zip(pred.masks, pred.valid)]
    return metrics_table(pred.labels, pred.scores, masks, maps, pred.classes)

def row_of(t)->dict:
    "{class: [image AUROC, pooled pixel AUROC, PRO]} of a metrics table, rounded: the JSON lines the sweeps print."
    return {c: [round(float(v), 3) for v in t.loc[c, ['image_auroc', 'pixel_auroc', 'pro']]] for c in t.index}

def run(name:str, fit, val, weights:str, channels, factor:float, relative_maps:bool=False, **settings):
    CONTEXT.update(channels=channels, factor=factor)
    t0 = time.perf_counter()
    model = build_model(weights=weights, progress=False, **settings).fit(fit, holdout=0)
    fit_s = time.perf_counter() - t0
    pred = model.predict(val)
    for relative in [False, True][:1 + relative_maps]:
        row = row_of(table(pred, relative))
        print(json.dumps({'set': name, 'channels': channels, 'factor': factor, 'settings': settings, 'relative_maps': relative,
                          'fit_s': round(fit_s), **row}), flush=True)

SETS = ['mt', 'mt-large', 'demo', 'mt-test']

def set_name(name:str)->str:
    "`name` when it is one of `SETS`, optionally with '@seed' (another split of `mt`/`mt-large`, another demo data set)."
    base, _, seed = name.partition('@')
    if base not in SETS or (seed and (not seed.isdigit() or base == 'mt-test')):
        raise argparse.ArgumentTypeError(f"{name!r}: expected one of {SETS}, the first three optionally with @seed (e.g. mt@1)")
    return name

def load_set(name:str, shared:Path, cache:Path)->tuple:
    "(what to fit on, samples to score) of one of `SETS`, '@seed' picking another split or demo data (see the module's text)."
    name, _, seed = name.partition('@')
    seed = int(seed or 0)
    category = shared / 'data' / 'magnetic_tile' / 'magnetic_tile'
    if name in ('mt', 'mt-large'): return synthetic_split(category, seed=seed, large=name == 'mt-large')
    if name == 'mt-test': return category, evaluation_samples(category)
    root = cache / ('demo' if not seed else f'demo_{seed}')
    if not root.exists(): make_synthetic_category(root, seed=seed)
    return root, evaluation_samples(root)

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--shared', type=Path, default=Path(os.environ.get('ANOMALY_NB_SHARED', Path(__file__).resolve().parents[3] / 'shared')))
    p.add_argument('--sets', nargs='+', default=['mt', 'demo'], type=set_name)
    p.add_argument('--relative-maps', action='store_true', help='also score each variant with maps less their median')
    p.add_argument('--variants', default='[[null,1,{}]]', help='JSON list of [channels or null, factor, ModelConfig settings]')
    p.add_argument('--cache', type=Path, default=Path('/tmp/context'))
    a = p.parse_args()
    fm.TimmFeatureExtractor.patch_features = with_context
    weights = str(a.shared / 'weights' / 'tf_efficientnet_lite0.in1k.safetensors')
    for s in a.sets:
        fit, val = load_set(s, a.shared, a.cache)
        for channels, factor, settings in json.loads(a.variants): run(s, fit, val, weights, channels, factor, a.relative_maps, **settings)

if __name__ == '__main__':
    main()
