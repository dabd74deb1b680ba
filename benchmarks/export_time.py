"""Seconds to export a resize='box' model (free box sizes) with and without constant 'same' padding.

    python benchmarks/export_time.py --shared ../shared

The default model (PaDiM, tf_efficientnet_lite0 with the offline ImageNet weights, resize='box') is fitted on every
11th good magnetic_tile training image, and `export.BoxExportGraph` is exported with the dynamo exporter twice, in one
run: as `export_model` does it (timm's run-time 'same' padding replaced by constant pads, `export.static_same_padding`)
and with the extractor's 'same' convolutions left as they are. Prints the seconds of `torch.export.export` and of the
ONNX translation of each, and checks that the two graphs compute the same grids on a box size neither was traced with.
"""
import argparse, contextlib, io, os, time, warnings
from pathlib import Path

import numpy as np
import torch
from anomaly_nb.data import mvtec_samples
from anomaly_nb.export import BoxExportGraph, _head_and_extractor, ort_session
from anomaly_nb.pipeline import build_model

def timed_export(graph)->tuple[float, float, bytes]:
    "(torch.export seconds, ONNX translation seconds, the serialised model)."
    args = graph.examples()[0]
    t0 = time.perf_counter()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter('ignore')
        ep = torch.export.export(graph, args, dynamic_shapes=graph.dynamic_shapes(torch.export.Dim('batch', min=1, max=4096)))
        t1 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            prog = torch.onnx.export(ep, args, dynamo=True, external_data=False, verbose=False,
                                     input_names=graph.input_names, output_names=graph.output_names)
    return t1 - t0, time.perf_counter() - t1, prog.model_proto.SerializeToString()

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--shared', type=Path, default=Path(os.environ.get('ANOMALY_NB_SHARED', Path(__file__).resolve().parents[2] / 'shared')))
    a = p.parse_args()
    cat = mvtec_samples(a.shared / 'data' / 'magnetic_tile' / 'magnetic_tile')
    model = build_model(weights=str(a.shared / 'weights' / 'tf_efficientnet_lite0.in1k.safetensors'), resize='box', progress=False,
                        device='cpu').fit(cat['train'][::11])
    fixed = BoxExportGraph(model)
    stock = BoxExportGraph(model)
    stock.extractor = _head_and_extractor(model)[1]  # a CPU copy of the extractor as fitted: run-time 'same' padding
    rows, protos = [], {}
    for name, g in (('constant padding (export_model)', fixed), ("run-time 'same' padding", stock)):
        te, tx, protos[name] = timed_export(g)
        rows.append(f"| {name} | {te:.1f} | {tx:.1f} | {te + tx:.1f} |")
    x = torch.randint(0, 256, (2, 3, 128, 208), dtype=torch.uint8).numpy()  # a box size neither graph was traced with
    outs = [ort_session(p).run(None, {'images': x})[0] for p in protos.values()]
    print(f"{fixed.static_pads} 'same' convolutions given constant padding; load average {os.getloadavg()[0]:.1f}\n")
    print("| extractor | torch.export s | ONNX translation s | total s |\n|---|---|---|---|\n" + '\n'.join(rows))
    print(f"\nlargest difference of the two graphs' grids on a 128x208 box: {float(np.abs(outs[0] - outs[1]).max()):.2g} "
          f"(largest value {float(np.abs(outs[1]).max()):.3g})")

if __name__ == '__main__':
    main()
