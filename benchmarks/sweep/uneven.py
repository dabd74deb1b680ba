"""Step 3 of the sweep: where the pooled pixel AUROC is lost (the README's "Where the 0.95 goal stands").

    python benchmarks/sweep/evaluate.py /tmp/q/256_pad_blocks.2-blocks.4-blocks.6.npz --save /tmp/q/pad_maps.npz
    python benchmarks/sweep/uneven.py /tmp/q/256_pad_blocks.2-blocks.4-blocks.6.npz /tmp/q/pad_maps.npz

Prints the defect pixels per class, the AUROC of each class's defect pixels against the normal pixels of
each class's images, the within-image pixel AUROC of the uneven images, and the pooled pixel AUROC with
and without the uneven class (on a seeded pixel sample weighted back to the full counts).
"""
import sys
import numpy as np
from sklearn.metrics import roc_auc_score
z=np.load(sys.argv[1]); m=np.load(sys.argv[2])
maps=m['maps'].astype(np.float32); masks=np.unpackbits(z['masks'],axis=-1).astype(bool); valid=np.unpackbits(z['valid'],axis=-1).astype(bool); cls=z['classes']
rng=np.random.default_rng(0)
def samp(x,n=300000): return x if len(x)<=n else rng.choice(x,n,replace=False)
tot={c:int(masks[cls==c].sum()) for c in set(cls)-{'good'}}
print('defect pixels per class', tot, 'share uneven', tot['uneven']/sum(tot.values()))
pos={c:samp(maps[cls==c][masks[cls==c]]) for c in set(cls)-{'good'}}
neg={c:samp(maps[cls==c][(~masks[cls==c]) & valid[cls==c]]) for c in set(cls)}
for pc in sorted(pos):
    print(pc, {nc: round(roc_auc_score(np.r_[np.ones(len(pos[pc])),np.zeros(len(neg[nc]))], np.r_[pos[pc],neg[nc]]),3) for nc in sorted(neg)})
# within-image AUROC for uneven images
w=[roc_auc_score(mk[v], mp[v]) for mp,mk,v in zip(maps[cls=='uneven'],masks[cls=='uneven'],valid[cls=='uneven']) if 0<mk[v].mean()<1]
print('uneven within-image pixel AUROC: median', np.median(w), 'mean', np.mean(w), 'n', len(w))
ntot={c:int(((~masks[cls==c]) & valid[cls==c]).sum()) for c in neg}
for drop in [None,'uneven']:
    cs=[c for c in pos if c!=drop]
    y=np.concatenate([np.ones(len(pos[c])) for c in cs]+[np.zeros(len(neg[c])) for c in neg])
    s=np.concatenate([pos[c] for c in cs]+[neg[c] for c in neg])
    wt=np.concatenate([np.full(len(pos[c]), tot[c]/len(pos[c])) for c in cs]+[np.full(len(neg[c]), ntot[c]/len(neg[c])) for c in neg])
    print('pooled pixel AUROC (weighted sample) without', drop, round(roc_auc_score(y, s, sample_weight=wt),4))
