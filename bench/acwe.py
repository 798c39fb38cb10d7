"""Benchmark: learned ACWE segmentation (RCNN) vs scikit-image's Chan-Vese on real CT slices.

On the bone-windowed axial slices of `tsB` (2 mm pixels, 256 x 256; see `medseg.acwe.ct_bone_slices`),
time per slice and Dice against the TotalSegmentator bone mask of
  (a) the trained RCNN (the paper's architecture) under several inference settings, batched, and
  (b) `skimage.segmentation.chan_vese` with its default settings, one slice at a time,
in one run. The RCNN is trained here without labels (mode 1) on the slices of `tsA`, or loaded with
`--weights`. Target: some inference setting of the learned model is >= 3x faster per slice than
`chan_vese`, with a Dice no worse than chan_vese's.

The settings are chosen for the machine: `torch.compile` with inductor's `freezing` (weights folded in as constants,
convolutions prepacked for oneDNN: PyTorch's CPU inference path), in the precision the CPU computes fastest
(`medseg.models.auto_precision`: bfloat16 only where it is native — AVX-512 BF16 or AMX — else float32), channels-last,
in batches of 1 and 4 slices (a 256 x 256 slice's 16-channel activations stay in the caches; 20 at once do not).

    python bench/acwe.py [DATA_DIR] [--epochs 2] [--weights FILE] [--repeats 5] [--threads 2]

Ends with one JSON line.
"""
import argparse, json, os, statistics, sys, time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('data', nargs='?', default=os.environ.get('MEDSEG_DATA'), help='data folder (default: $MEDSEG_DATA)')
    ap.add_argument('--weights', default=None, help='trained RCNN weights (medseg save_model file); default: train here')
    ap.add_argument('--epochs', type=int, default=2, help='mode-1 training epochs on tsA when no --weights')
    ap.add_argument('--repeats', type=int, default=5, help='timing repeats (medians reported)')
    ap.add_argument('--cv-slices', type=int, default=20, help='test slices given to chan_vese (all 20 by default)')
    ap.add_argument('--threads', type=int, default=torch.get_num_threads(), help='torch threads')
    ap.add_argument('--no-compile', action='store_true', help='skip the torch.compile setting')
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from skimage.segmentation import chan_vese
    from medseg.acwe import ct_bone_slices, acwe_learner, BONE_WINDOW
    from medseg.data import ArrayDataset, make_dls
    from medseg.metrics import dice
    from medseg.models import load_model, save_model

    xb, yb = ct_bone_slices('tsB', args.data)
    if args.weights:
        model = load_model(args.weights)
        trained = f'loaded {args.weights}'
    else:
        xa, _ = ct_bone_slices('tsA', args.data)
        torch.manual_seed(0)
        learn = acwe_learner(make_dls(ArrayDataset(xa), ArrayDataset(xb, yb), bs=8, seed=0), mode='acwe')
        t0 = time.time()
        with learn.no_bar(), learn.no_logging(): learn.fit(args.epochs)
        trained = f'mode 1 (no labels) on tsA, {args.epochs} epochs, {time.time() - t0:.0f} s'
        model = learn.model
    model = model.eval()
    print(f'RCNN: {trained}; test: tsB, {len(xb)} slices of {xb.shape[1]}x{xb.shape[2]}; threads {args.threads}')

    x = torch.from_numpy(xb)[:, None].contiguous()
    mdice = lambda p: float(np.mean([dice(a, b) for a, b in zip(p, yb)]))

    def timed(fn, repeats):
        fn()  # warm-up (and compilation)
        ts = []
        for _ in range(repeats):
            t = time.perf_counter(); out = fn(); ts.append(time.perf_counter() - t)
        return statistics.median(ts), out

    settings = {}
    def run_eager():
        with torch.no_grad(): return model(x)
    def run_infer():
        with torch.inference_mode(): return model(x)
    m_cl = model.to(memory_format=torch.channels_last)
    x_cl = x.to(memory_format=torch.channels_last)
    def run_cl():
        with torch.inference_mode(): return m_cl(x_cl)
    def run_bf16():
        with torch.inference_mode(), torch.autocast('cpu', dtype=torch.bfloat16): return m_cl(x_cl).float()
    cands = [('eager no_grad fp32', run_eager), ('inference_mode fp32', run_infer),
             ('inference_mode channels_last fp32', run_cl), ('inference_mode channels_last bf16 autocast', run_bf16)]
    if not args.no_compile:
        # inductor with `freezing` (weights folded in as constants, oneDNN prepacking: PyTorch's CPU inference path), in
        # the precision the device computes fastest (medseg.models.auto_precision: bf16 only where it is native), in
        # batches of a few slices (the activations of a 256 x 256 x 16-channel slice fit the caches; 20 at once do not)
        from medseg.models import auto_precision
        prec = auto_precision('cpu')
        dt = torch.bfloat16 if prec == 'bf16' else None
        def compiled(bs):
            net = torch.compile(m_cl, options={'freezing': True})
            def run():
                with torch.inference_mode(), (torch.autocast('cpu', dtype=dt) if dt else nullcontext()):
                    return torch.cat([net(x_cl[i:i + bs]).float() for i in range(0, len(x_cl), bs)])
            return run
        try:
            comp = torch.compile(m_cl)
            def run_comp():
                with torch.inference_mode(), torch.autocast('cpu', dtype=torch.bfloat16): return comp(x_cl).float()
            cands.append(('torch.compile channels_last bf16 autocast', run_comp))
            for bs in (1, 4):
                cands.append((f"torch.compile freezing channels_last {'bf16' if dt else 'fp32'} (auto), batches of {bs}", compiled(bs)))
        except Exception as e:
            print('torch.compile unavailable:', e)
    for name, fn in cands:
        try:
            t0 = time.perf_counter(); fn(); first = time.perf_counter() - t0
            med, out = timed(fn, args.repeats)
        except Exception as e:
            print(f'{name}: failed ({type(e).__name__}: {e})'); continue
        settings[name] = dict(ms_per_slice=1000*med/len(x), first_call_s=first, dice=mdice(out[:, 0].numpy() > 0))

    # scikit-image Chan-Vese, default settings, per slice; its two phases are unordered: foreground = brighter phase
    cv_ts, cv_pred = [], []
    for k in range(min(args.cv_slices, len(xb))):
        t = time.perf_counter(); m = chan_vese(xb[k]); cv_ts.append(time.perf_counter() - t)
        if m.any() and (~m).any() and xb[k][m].mean() < xb[k][~m].mean(): m = ~m
        cv_pred.append(m)
    cv_s = statistics.median(cv_ts)
    cv_dice = float(np.mean([dice(a, b) for a, b in zip(cv_pred, yb)]))

    print(f"\n{'method':46s} {'ms/slice':>9s} {'speed-up':>9s} {'Dice':>7s}")
    for name, r in settings.items():
        print(f"{'RCNN ' + name:46s} {r['ms_per_slice']:9.2f} {1000*cv_s/r['ms_per_slice']:9.1f} {r['dice']:7.3f}")
    print(f"{'skimage chan_vese (defaults, per slice)':46s} {1000*cv_s:9.2f} {1:9.1f} {cv_dice:7.3f}")
    ok = {n: (1000*cv_s/r['ms_per_slice'] >= 3 and r['dice'] >= cv_dice) for n, r in settings.items()}
    best = min(settings, key=lambda n: settings[n]['ms_per_slice'])
    print(json.dumps(dict(bench='acwe', device='cpu', threads=args.threads, slices=len(xb), size=int(xb.shape[1]),
                          window=list(BONE_WINDOW), rcnn=settings, chan_vese=dict(ms_per_slice=1000*cv_s, dice=cv_dice, slices=len(cv_ts)),
                          fastest=best, speedup_fastest=1000*cv_s/settings[best]['ms_per_slice'], meets=ok,
                          target='>=3x faster than chan_vese with Dice >= chan_vese', target_met=any(ok.values()))))


if __name__ == '__main__':
    main()
