"""Cohort inference: `medseg predict` (medseg.inference.predict_files) against MONAI's SliceInferer, same network, same device.

On the shared real scans — every brain T1 of DATA_DIR/brain_ixi/t1 and the CT volumes DATA_DIR/ct/*_ct — a U-Net
(medseg.models.UNet, random weights: throughput does not depend on them; `--widths`) segments each volume slice by
slice (axial slices of the canonical volume at their own size, z-score preprocessing), file in, mask file out:

* `medseg`          : predict_files, float32, eager;
* `medseg tta flip` : the same with the four in-plane flips averaged;
* `medseg fast`     : --fast: precision auto (bf16 only where the device computes it natively), channels-last;
* `medseg fast+compile`: the same and torch.compile (its compilations — one per slice size — are part of the measured
                      time: on a cohort of mixed slice sizes they cost more than they save on a 2-core CPU);
* `monai`           : LoadImage -> EnsureChannelFirst -> Orientation('PLS') (the same 2D slices as medseg's display
                      orientation) -> NormalizeIntensity -> SliceInferer(roi_size=(-1, -1), sw_batch_size=bs) -> threshold
                      -> SaveImage, one volume after another.

Each side runs in its own subprocess (so that its peak resident memory, `ru_maxrss`, is its own; on a GPU the peak of
torch's allocator), `--repeats` times alternating, medians reported. Before timing, the masks of `medseg` and `monai`
are compared (mean Dice over the volumes, reoriented to RAS): the same network on the same slices. Targets: medseg
without TTA at least as fast as MONAI (volumes/s ratio >= 1.0), and `medseg fast` >= 1.5x plain eager medseg.

    python bench/predict.py [DATA_DIR] [--device cpu] [--repeats 2] [--bs 16] [--max-volumes N] [--threads N]

Ends with one JSON line.
"""
from __future__ import annotations
import argparse, json, os, resource, statistics, subprocess, sys, tempfile, time, warnings
from pathlib import Path

SIDES = ('medseg', 'medseg tta flip', 'medseg fast', 'medseg fast+compile', 'monai')

def scans(data:Path, max_volumes:int|None)->list:
    ixi = sorted((data/'brain_ixi'/'t1').glob('*.nii.gz'))
    ct = sorted((data/'ct').glob('*_ct.nii.gz'))
    out = ixi + ct
    if not out: sys.exit(f"no scans in {data}/brain_ixi/t1 or {data}/ct (give the shared data folder)")
    return out[:max_volumes] if max_volumes else out

def run_side(side:str, files:list, weights:str, out:str, device:str, bs:int, threads:int)->dict:
    "One side, in this (fresh) process: seconds, volumes, slices, peak memory."
    import torch
    torch.set_num_threads(threads)
    warnings.filterwarnings('ignore')
    import nibabel as nib
    def axial(f):             # the number of axial slices: the length of the stored axis that runs inferior-superior
        img = nib.load(f); codes = nib.aff2axcodes(img.affine)
        return int(img.shape[[i for i, c in enumerate(codes) if c in 'SI'][0]])
    n_slices = sum(axial(f) for f in files)
    t0 = time.perf_counter(); first = None
    if side.startswith('medseg'):
        from medseg.inference import Segmenter, predict_files
        kw = dict(device=device, bs=bs)
        if side == 'medseg tta flip': kw['tta'] = 'flip'
        if side.startswith('medseg fast'): kw.update(precision='auto', channels_last=True)      # `medseg predict --fast`
        if side == 'medseg fast+compile': kw['compile'] = True
        res = predict_files(weights, files, out, overwrite=True, **kw)
        first = None
    else:
        from monai.inferers import SliceInferer
        from monai.transforms import LoadImage, EnsureChannelFirst, Orientation, NormalizeIntensity, SaveImage
        from medseg.models import load_model
        net = load_model(weights).to(device).eval()
        load, chan, orient, norm = LoadImage(image_only=True), EnsureChannelFirst(), Orientation(axcodes='PLS'), NormalizeIntensity()
        save = SaveImage(output_dir=out, output_postfix='', separate_folder=False, resample=False, print_log=False, output_dtype='uint8')
        inferer = SliceInferer(roi_size=(-1, -1), sw_batch_size=bs, spatial_dim=2, progress=False)
        with torch.inference_mode():
            for f in files:
                img = norm(orient(chan(load(str(f)))))
                y = inferer(img[None].to(device).float(), net)
                mask = (y[0] > 0).to(torch.uint8).cpu()
                mask.meta = img.meta; mask.applied_operations = img.applied_operations
                save(mask)
    seconds = time.perf_counter() - t0
    peak = (torch.cuda.max_memory_allocated()/2**20) if device.startswith('cuda') else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024
    return dict(seconds=seconds, volumes=len(files), slices=n_slices, peak_mb=peak)

def agreement(a:Path, b:Path, files:list)->tuple:
    "Mean Dice of the medseg and MONAI masks of each volume, both reoriented to RAS; and medseg's mean foreground fraction."
    import numpy as np, nibabel as nib
    ds, fg = [], []
    for f in files:
        m1 = nib.as_closest_canonical(nib.load(str(a/Path(f).name))).get_fdata() > 0
        m2 = nib.as_closest_canonical(nib.load(str(b/Path(f).name))).get_fdata() > 0
        if m1.shape != m2.shape: return float('nan'), float('nan')
        s = m1.sum() + m2.sum(); ds.append(1. if s == 0 else 2*(m1 & m2).sum()/s); fg.append(m1.mean())
    return float(np.mean(ds)), float(np.mean(fg))

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('data', nargs='?', default=os.environ.get('MEDSEG_DATA'), help='the shared data folder (default: $MEDSEG_DATA)')
    ap.add_argument('--device', default='cpu')
    ap.add_argument('--repeats', type=int, default=2)
    ap.add_argument('--bs', type=int, default=16)
    ap.add_argument('--widths', default='8,16,32', help='U-Net widths (the network both sides run)')
    ap.add_argument('--max-volumes', type=int, default=None, help='only the first N scans (quick runs)')
    ap.add_argument('--threads', type=int, default=int(os.environ.get('OMP_NUM_THREADS', 0)) or (os.cpu_count() or 1))
    ap.add_argument('--side', default=None, help=argparse.SUPPRESS)          # internal: run one side
    ap.add_argument('--files', default=None, help=argparse.SUPPRESS)
    ap.add_argument('--weights', default=None, help=argparse.SUPPRESS)
    ap.add_argument('--out', default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.side:
        print(json.dumps(run_side(a.side, json.loads(a.files), a.weights, a.out, a.device, a.bs, a.threads))); return
    if not a.data: sys.exit("give the shared data folder (or set MEDSEG_DATA)")
    files = [str(f) for f in scans(Path(a.data), a.max_volumes)]
    import torch
    from medseg.models import UNet, save_model, native_bf16, auto_precision
    tmp = Path(tempfile.mkdtemp())
    torch.manual_seed(0)
    widths = tuple(int(w) for w in a.widths.split(','))
    net = UNet(in_ch=1, out_ch=1, widths=widths).eval()
    from medseg.io import load_nifti, to_canonical, to_display
    from medseg.scans import zscore
    x = torch.from_numpy(to_display(zscore(to_canonical(load_nifti(files[0])).array.astype('float32')), 2).copy())[:, None]
    with torch.no_grad(): m = float(net(x[::4]).median())
    last = [mod for mod in net.modules() if isinstance(mod, torch.nn.Conv2d)][-1]
    with torch.no_grad(): last.bias -= m                     # about half the voxels foreground: an agreement check that means something
    weights = save_model(net, tmp/'unet.pt', preprocess='zscore', axis=2)
    print(f"{len(files)} volumes; U-Net widths {widths}; device {a.device}, threads {a.threads}, bs {a.bs}; "
          f"auto precision here: {auto_precision(a.device)} (native bf16: {native_bf16(a.device)})", flush=True)
    def side(name, rep):
        out = tmp/f"{name.replace(' ', '_')}_{rep}"
        r = subprocess.run([sys.executable, __file__, '--side', name, '--files', json.dumps(files), '--weights', str(weights),
                            '--out', str(out), '--device', a.device, '--bs', str(a.bs), '--threads', str(a.threads)], capture_output=True, text=True)
        if r.returncode: sys.exit(f"{name} failed:\n{r.stderr[-3000:]}")
        return json.loads(r.stdout.strip().splitlines()[-1]), out
    res = {s: [] for s in SIDES}; outs = {}
    for rep in range(a.repeats):
        for s in (SIDES if rep % 2 == 0 else SIDES[::-1]):
            r, outs[s] = side(s, rep); res[s].append(r)
            print(f"  {s:20s} repeat {rep}: {r['seconds']:.1f} s, peak {r['peak_mb']:.0f} MB", flush=True)
    agree, fg = agreement(outs['medseg'], outs['monai'], files)
    med = {s: dict(seconds=statistics.median(x['seconds'] for x in v), volumes=v[0]['volumes'], slices=v[0]['slices'],
                   peak_mb=max(x['peak_mb'] for x in v)) for s, v in res.items()}
    for s, m in med.items(): m.update(volumes_per_s=m['volumes']/m['seconds'], slices_per_s=m['slices']/m['seconds'])
    vs_monai = med['medseg']['volumes_per_s']/med['monai']['volumes_per_s']
    fast_gain = med['medseg fast']['volumes_per_s']/med['medseg']['volumes_per_s']
    print(f"\n{'side':20s} {'s':>8s} {'vol/s':>8s} {'slices/s':>9s} {'peak MB':>8s}")
    for s, m in med.items(): print(f"{s:20s} {m['seconds']:8.1f} {m['volumes_per_s']:8.3f} {m['slices_per_s']:9.1f} {m['peak_mb']:8.0f}")
    print(f"medseg / monai throughput {vs_monai:.2f} (target >= 1.0); fast / eager medseg {fast_gain:.2f} (target >= 1.5); "
          f"masks agree: mean Dice {agree:.4f} (foreground {100*fg:.0f} % of the voxels)")
    print(json.dumps(dict(bench='predict', device=a.device, threads=a.threads, volumes=len(files), widths=list(widths), bs=a.bs,
                          sides=med, agreement_dice=agree, foreground_fraction=fg, medseg_over_monai=vs_monai, fast_over_eager=fast_gain,
                          reference='MONAI SliceInferer (same network, same slices, same device)',
                          target_met=bool(vs_monai >= 1.0 and fast_gain >= 1.5 and agree > 0.99 and 0.05 < fg < 0.95))))

if __name__ == '__main__':
    main()
