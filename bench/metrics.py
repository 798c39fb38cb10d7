#!/usr/bin/env python
"""Benchmark medseg's HD95 and ASSD against MONAI and medpy on synthetic 3D mask pairs.

    python bench/metrics.py [DATA_DIR] [--repeats 5] [--sizes 128 256] [--medpy-repeats 1]

The masks are synthetic (no data needed; DATA_DIR is accepted for a uniform bench interface): an organ-like target
(an ellipsoid with a smoothly perturbed surface) and a prediction that is the target with a finer surface
perturbation plus a small false-positive island, on an anisotropic grid (0.8, 0.8, 2.5) mm.
Each timing is the median of the repeats of one call (input checks included). medseg runs with its defaults
(`method='auto'`, all cores); a single-thread row is printed for comparison. The last line is one JSON object.
"""
import argparse, json, os, sys, time, warnings
from pathlib import Path
import numpy as np
from scipy import ndimage as ndi

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run from a checkout without installing
warnings.filterwarnings('ignore', category=FutureWarning)
import torch
import medseg.metrics as M
from monai.metrics import compute_hausdorff_distance, compute_average_surface_distance
import medpy.metric.binary as mpb

SPACING = (0.8, 0.8, 2.5)
TOL = 1e-4

def smooth_noise(n, cells, seed):
    "Unit-variance smooth random field on an n^3 grid: smoothed noise on a coarse grid, trilinearly upsampled."
    lo = ndi.gaussian_filter(np.random.default_rng(seed).standard_normal((cells,) * 3), 1.0)
    hi = ndi.zoom((lo / lo.std()).astype(np.float32), n / cells, order=1, grid_mode=True, mode='grid-wrap')
    return hi[:n, :n, :n]

def mask_pair(n, seed=0):
    "(pred, target) boolean n^3 masks: perturbed ellipsoid, and the same with finer perturbation + an island."
    g = ((np.arange(n, dtype=np.float32) + 0.5) / n) * 2 - 1
    z, y, x = g[:, None, None], g[None, :, None], g[None, None, :]
    r2 = (z / 0.55) ** 2 + (y / 0.45) ** 2 + (x / 0.6) ** 2
    coarse = smooth_noise(n, 10, seed)
    target = r2 + 0.3 * coarse < 1
    pred = r2 + 0.3 * coarse + 0.15 * smooth_noise(n, 28, seed + 1) < 1
    pred |= (z - 0.7) ** 2 + (y + 0.7) ** 2 + (x - 0.7) ** 2 < 0.08 ** 2     # false-positive island
    return pred, target

def timed(f, repeats):
    "(median seconds, value of the last call) of `repeats` calls of f."
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter(); v = f(); ts.append(time.perf_counter() - t0)
    return float(np.median(ts)), float(v)

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('data_dir', nargs='?', default=os.environ.get('MEDSEG_DATA'),
                    help='data folder (default $MEDSEG_DATA); not needed, the masks are synthetic')
    ap.add_argument('--repeats', type=int, default=5, help='timed calls per measurement (median reported)')
    ap.add_argument('--sizes', type=int, nargs='+', default=[128, 256], help='cube sizes n of the n^3 masks')
    ap.add_argument('--medpy-repeats', type=int, default=1,
                    help='timed calls for medpy (slow: a full-volume EDT per direction per call)')
    a = ap.parse_args(argv)
    print(f"data dir: {a.data_dir} (unused: synthetic masks)  spacing {SPACING} mm  repeats {a.repeats} "
          f"(medpy: {a.medpy_repeats})  threads: {os.cpu_count()}  torch threads: {torch.get_num_threads()}")
    sp = list(SPACING)
    res = dict(medseg={}, monai={}, medpy={}, ratio_vs_monai={}, values_match={})
    ok_speed, ok_values = True, True
    for n in a.sizes:
        t0 = time.perf_counter(); p, t = mask_pair(n); tgen = time.perf_counter() - t0
        print(f"\n=== {n}^3: target {t.sum()} vox, pred {p.sum()} vox, Dice {M.dice(p, t):.4f} "
              f"(generated in {tgen:.1f} s) ===")
        R = a.repeats
        ms = {}
        ms['hd95_max_s'], ms['hd95_max'] = timed(lambda: M.hd95(p, t, sp), R)
        ms['hd95_pooled_s'], ms['hd95_pooled'] = timed(lambda: M.hd95(p, t, sp, mode='pooled'), R)
        ms['assd_pooled_s'], ms['assd_pooled'] = timed(lambda: M.assd(p, t, sp), R)
        ms['assd_mean_s'], ms['assd_mean'] = timed(lambda: M.assd(p, t, sp, mode='mean'), R)
        ms['hd95+assd_s'], _ = timed(lambda: M.surface_metrics(p, t, sp)['hd95'], R)
        ms['hd95_max_1thread_s'], _ = timed(lambda: M.hd95(p, t, sp, workers=1), R)
        ms['assd_pooled_1thread_s'], _ = timed(lambda: M.assd(p, t, sp, workers=1), R)
        both = M.surface_metrics(p, t, sp)
        assert both['hd95'] == ms['hd95_max'] and both['assd'] == ms['assd_pooled']
        # MONAI gets the (B, C, ...) tensors it is designed for, prepared outside the timing
        pt, tt = torch.from_numpy(p)[None, None], torch.from_numpy(t)[None, None]
        mo = {}
        mo['hd95_s'], mo['hd95'] = timed(lambda: compute_hausdorff_distance(
            pt, tt, include_background=True, percentile=95, spacing=sp).item(), R)
        mo['assd_s'], mo['assd'] = timed(lambda: compute_average_surface_distance(
            pt, tt, include_background=True, symmetric=True, spacing=sp).item(), R)
        mo_mean = np.mean([compute_average_surface_distance(u, v, include_background=True, spacing=sp).item()
                           for u, v in [(pt, tt), (tt, pt)]])           # untimed: reference for ASSD 'mean'
        md = {}
        md['hd95_s'], md['hd95'] = timed(lambda: mpb.hd95(p, t, voxelspacing=sp), a.medpy_repeats)
        md['assd_s'], md['assd'] = timed(lambda: mpb.assd(p, t, voxelspacing=sp), a.medpy_repeats)
        match = {'hd95_max=MONAI': abs(ms['hd95_max'] - mo['hd95']) <= TOL,
                 'hd95_pooled=medpy': abs(ms['hd95_pooled'] - md['hd95']) <= TOL,
                 'assd_pooled=MONAI': abs(ms['assd_pooled'] - mo['assd']) <= TOL,
                 'assd_pooled=medpy': abs(ms['assd_pooled'] - md['assd']) <= TOL,
                 'assd_mean=MONAI_directed_mean': abs(ms['assd_mean'] - mo_mean) <= TOL}
        ratio = dict(hd95=ms['hd95_max_s'] / mo['hd95_s'], assd=ms['assd_pooled_s'] / mo['assd_s'],
                     hd95_1thread=ms['hd95_max_1thread_s'] / mo['hd95_s'],
                     assd_1thread=ms['assd_pooled_1thread_s'] / mo['assd_s'])
        ok_speed &= ratio['hd95'] <= 1.0 and ratio['assd'] <= 1.0
        ok_values &= all(match.values())
        k = str(n)
        res['medseg'][k], res['monai'][k], res['medpy'][k] = ms, mo, md
        res['ratio_vs_monai'][k], res['values_match'][k] = ratio, match
        rows = [('medseg hd95 (max, default)', ms['hd95_max_s'], ms['hd95_max']),
                ('medseg hd95 (pooled)', ms['hd95_pooled_s'], ms['hd95_pooled']),
                ('medseg hd95 (max, 1 thread)', ms['hd95_max_1thread_s'], ms['hd95_max']),
                ('MONAI  hd95 (max)', mo['hd95_s'], mo['hd95']),
                (f"medpy  hd95 (pooled) [{a.medpy_repeats} rep]", md['hd95_s'], md['hd95']),
                ('medseg assd (pooled, default)', ms['assd_pooled_s'], ms['assd_pooled']),
                ('medseg assd (mean)', ms['assd_mean_s'], ms['assd_mean']),
                ('medseg assd (pooled, 1 thread)', ms['assd_pooled_1thread_s'], ms['assd_pooled']),
                ('MONAI  assd (pooled)', mo['assd_s'], mo['assd']),
                ('MONAI  assd (mean of directed; untimed)', float('nan'), mo_mean),
                (f"medpy  assd (pooled) [{a.medpy_repeats} rep]", md['assd_s'], md['assd']),
                ('medseg hd95+assd in one call', ms['hd95+assd_s'], float('nan'))]
        print(f"{'metric':42s} {'time s':>9s} {'value mm':>11s}")
        for name, s, v in rows: print(f"{name:42s} {s:9.4f} {v:11.5f}")
        print(f"medseg/MONAI time: hd95 {ratio['hd95']:.3f}, assd {ratio['assd']:.3f}  "
              f"(1 thread: {ratio['hd95_1thread']:.3f}, {ratio['assd_1thread']:.3f});  values match: "
              + ', '.join(f"{k2} {'yes' if v2 else 'NO'}" for k2, v2 in match.items()))
    out = dict(bench='metrics', sizes=a.sizes, spacing=sp, repeats=a.repeats, medpy_repeats=a.medpy_repeats,
               **res, speed_ok=bool(ok_speed), values_ok=bool(ok_values), target_met=bool(ok_speed and ok_values))
    print(json.dumps(out, separators=(',', ':'), default=lambda o: o.item() if hasattr(o, 'item') else str(o)))

if __name__ == '__main__': main()
