"""Step 2 of the sweep: compose cached stage features, fit a detector, print image / pooled pixel AUROC per class.

    python benchmarks/sweep/evaluate.py /tmp/q/256_pad_blocks.2-blocks.4-blocks.6.npz --layers blocks.2,blocks.4 --det padim

'tune' pools good + blowhole, crack, fray (the classes choices were made on); 'held' pools good + break,
uneven (looked at only afterwards). Options: --pool/--pools (local averaging), --proj (random projection),
--center (per-image feature centring), --sigma (map blur), --det padim|knn|gaussian, --bank, --k.
"""
import sys, time, json, argparse, numpy as np, torch, torch.nn.functional as F
from anomaly_nb.maps import anomaly_maps, image_scores
from anomaly_nb.metrics import image_auroc, pixel_auroc, pro_score
from anomaly_nb.statistics import PositionalGaussianDetector, GaussianDetector
from anomaly_nb.neighbours import KNNDetector
torch.set_num_threads(2)
p = argparse.ArgumentParser()
p.add_argument('cache'); p.add_argument('--layers', default='blocks.2,blocks.4'); p.add_argument('--pool', type=int, default=3)
p.add_argument('--det', default='padim'); p.add_argument('--k', type=int, default=1); p.add_argument('--bank', type=int, default=20000)
p.add_argument('--proj', type=int, default=0); p.add_argument('--sigma', type=float, default=4); p.add_argument('--topk', type=float, default=0)
p.add_argument('--grid', default='finest'); p.add_argument('--pro', action='store_true'); p.add_argument('--save', default='')
p.add_argument('--pools', default=''); p.add_argument('--center', default='')
a = p.parse_args()
z = np.load(a.cache)
layers = a.layers.split(',')
pools = [int(x) for x in a.pools.split(',')] if a.pools else [a.pool] * len(layers)
def compose(split):
    fs = [torch.from_numpy(z[f'{split}:{l}'].astype(np.float32)) for l in layers]
    fs = [F.avg_pool2d(f, q, 1, q // 2, count_include_pad=False) if q > 1 else f for f, q in zip(fs, pools)]
    size = max((f.shape[-2:] for f in fs), key=lambda s: s[0]*s[1]) if a.grid == 'finest' else fs[-1].shape[-2:]
    fs = [f if f.shape[-2:] == size else F.interpolate(f, size=size, mode='bilinear', align_corners=False) for f in fs]
    x = torch.cat(fs, 1)
    if a.center == 'median': x = x - x.flatten(2).median(2).values[..., None, None]
    if a.center == 'mean': x = x - x.mean((2, 3), keepdim=True)
    if a.center == 'std': x = (x - x.mean((2, 3), keepdim=True)) / (x.std((2, 3), keepdim=True) + 1e-3)
    if a.proj:
        g = torch.Generator().manual_seed(0); P = torch.randn(x.shape[1], a.proj, generator=g) / a.proj ** .5
        x = torch.einsum('nchw,cd->ndhw', x, P)
    return x.numpy()
t0 = time.time()
tr, te = compose('train'), compose('test')
n, c, h, w = tr.shape
rows = lambda f: np.ascontiguousarray(f.transpose(0, 2, 3, 1).reshape(-1, f.shape[1]))
if a.det == 'padim':
    det = PositionalGaussianDetector().fit(rows(tr).reshape(n, h*w, c))
    s = det.score(rows(te).reshape(len(te), h*w, c)).reshape(len(te), h, w)
else:
    det = KNNDetector(k=a.k, bank='random', ratio=1.0, max_bank=a.bank) if a.det == 'knn' else GaussianDetector()
    det.fit(rows(tr)); s = det.score(rows(te)).reshape(len(te), h, w)
tfit = time.time() - t0
masks = np.unpackbits(z['masks'], axis=-1).astype(bool); valid = np.unpackbits(z['valid'], axis=-1).astype(bool)
H, W = masks.shape[1:]
maps = anomaly_maps(s, (H, W), a.sigma)
vv = None if valid.all() else valid
sc = image_scores(maps, None if a.topk == 0 else a.topk, vv)
labels, classes = z['labels'], z['classes']
if vv is None: mlist, klist = list(maps), list(masks)
else: mlist = [m[v].reshape(1, -1) for m, v in zip(maps, valid)]; klist = [m[v].reshape(1, -1) for m, v in zip(masks, valid)]
res = {}
TUNE, HELD = ('blowhole', 'crack', 'fray'), ('break', 'uneven')
for name, sel in [('all', np.ones(len(labels), bool))] + [(c_, (classes == 'good') | (classes == c_)) for c_ in sorted(set(classes) - {'good'})] + [('tune', np.isin(classes, ('good',) + TUNE)), ('held', np.isin(classes, ('good',) + HELD))]:
    idx = np.flatnonzero(sel)
    r = dict(img=image_auroc(labels[idx], sc[idx]), pix=pixel_auroc([klist[i] for i in idx], [mlist[i] for i in idx]))
    if a.pro and name in ('all',): r['pro'] = pro_score([klist[i] for i in idx], [mlist[i] for i in idx])
    res[name] = r
desc = ' '.join(f'{k}={v}' for k, v in vars(a).items() if k not in ('cache', 'save'))
print(f"{a.cache.split('/')[-1]} {desc} dim={c} grid={h}x{w} t={tfit:.0f}s")
print('  ' + ' | '.join(f"{k} {v['img']:.3f}/{v['pix']:.3f}" + (f"/{v['pro']:.3f}" if 'pro' in v else '') for k, v in res.items()), flush=True)
if a.save: np.savez(a.save, scores=sc, maps=maps.astype(np.float16))
