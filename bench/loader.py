"""Data at scale: the slice cache against the per-item path, the batched augmentations, loader memory, and how long a step waits for data.

On the shared real scans — the 40 IXI brain T1 (DATA_DIR/brain_ixi, 120x120x90, central half of the axial slices) and
the CT volumes (DATA_DIR/ct, every axial slice) — slice batches of 16 at 128² and 256², one thread:

* `items`   : today's per-item path (`slice_dls(cache=False)`: each item cut from a volume held in RAM and resized);
* `cached`  : the slice cache (`slice_dls(cache=DIR)`: batches by indexing memory-mapped arrays); its build time (a
              fresh cache, built by the default number of processes) is reported apart;
* `items+aug`  : the per-item path with the default augmentations as they were before the batched rewrite (the module
                 `medseg/augment.py` of commit REFERENCE, read with git; without git: `Augment(fuse=False)`);
* `cached+aug` : the cache with today's fused default augmentations.

Both sides build their loaders with today's `slice_dls`, which lets the allocator reuse the memory of freed batches
(`medseg.data.keep_batch_memory`): the reference augmentations profit from it too.

Each side runs in its own subprocess (its peak resident memory, `ru_maxrss`, is its own), `--repeats` times, medians
reported; each rate is timed over `--batches` batches and at least a second. Memory of a 4-worker loader: the summed proportional set size (PSS: shared pages counted once over the
processes that share them) of the main process and its 4 workers while they deliver batches, less the main process's
PSS before the data were opened (the interpreter with torch), against the cached arrays' size; the same for today's
path, where every worker loads its own copy of every volume.

Data wait: a U-Net at the papers' widths (32..512) trained with `--precision bf16` (autocast) on cached 128² batches
of 16 with the default augmentations: the share of each step spent getting the next batch (loading and augmenting),
over `--steps` steps after one warm-up step.

Targets (same run): cached >= 10x items at 128² and >= 4x at 256²; cached+aug >= 3x items+aug at 256²; the 4-worker
cached loader's memory < 1.5x the cached arrays; the data wait < 5 % of a step.

    python bench/loader.py [DATA_DIR] [--repeats 3] [--batches 40] [--threads 1] [--steps 5]

Ends with one JSON line.
"""
from __future__ import annotations
import argparse, json, os, resource, statistics, subprocess, sys, tempfile, time
from pathlib import Path

REFERENCE = '0757f549ba3a6891343dc25fa4137b2df922418c'   # the last commit before the slice cache and the fused augmentations
SIZES = (128, 256)

def scans_of(data:Path, which:str)->dict:
    from medseg.scans import as_scans
    if which == 'ixi': return as_scans(data/'brain_ixi'/'t1', data/'brain_ixi'/'labels', '', '_DLMUSE')
    return as_scans(data/'ct', None, '_ct', '_liver')

def loader_kw(which:str, size:int)->dict:
    return dict(preprocess='mr' if which == 'ixi' else 'ct', labels=(51, 52) if which == 'ixi' else None, size=size, bs=16,
                middle=0.5 if which == 'ixi' else None, valid_pct=0, seed=0)

def reference_augment(repo:Path):
    "The default augmentations as they were at REFERENCE (git), or today's without fusion."
    import importlib.util
    from medseg.augment import Augment, default_augs
    try:
        src = subprocess.run(['git', '-C', str(repo), 'show', f'{REFERENCE}:medseg/augment.py'], capture_output=True, text=True, check=True).stdout
        f = Path(tempfile.mkdtemp())/'augment_reference.py'; f.write_text(src)
        spec = importlib.util.spec_from_file_location('augment_reference', f); mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
        return mod.Augment(mod.default_augs(), ('image', 'mask'), ((0, 1),), seed=0), 'medseg/augment.py@' + REFERENCE[:7]
    except (subprocess.CalledProcessError, FileNotFoundError, OSError):
        return Augment(default_augs(), seed=0, fuse=False), 'Augment(fuse=False)'

def rate(dl, n_batches:int, aug=None, min_s:float=1.)->float:
    "Slices per second delivered by a loader (augmented by `aug` when given), over `n_batches` batches and at least `min_s` seconds."
    n, k, t0, it = 0, 0, time.perf_counter(), iter(dl)
    while k < n_batches or time.perf_counter() - t0 < min_s:
        try: b = next(it)
        except StopIteration: it = iter(dl); b = next(it)
        if aug is not None: b = aug(b)
        n += len(b[0]); k += 1
    return n/(time.perf_counter() - t0)

def pss(pid:int)->int:
    "Proportional set size of a process, bytes (Linux)."
    for line in open(f'/proc/{pid}/smaps_rollup'):
        if line.startswith('Pss:'): return int(line.split()[1])*1024
    return 0

def run_side(side:str, data:Path, which:str, size:int, batches:int, cache:str, repo:Path)->dict:
    import torch
    torch.set_num_threads(1)
    from medseg.data import slice_dls
    from medseg.augment import Augment, default_augs
    from medseg.cache import slice_cache
    from medseg.scans import ScanStore
    scans, kw = scans_of(data, which), loader_kw(which, size)
    out = dict(side=side, data=which, size=size)
    if side == 'build':
        t0 = time.perf_counter()
        c = slice_cache(ScanStore(scans, kw['preprocess'], kw['labels']), size, cache=cache, quiet=True)
        out.update(build_s=time.perf_counter() - t0, cache_mb=c.nbytes/2**20, slices=len(c.table()), dtype=str(c.images.dtype),
                   build_workers=min(os.cpu_count() or 1, 8) if len(scans) >= 8 else 1)
    elif side in ('items', 'cached'):
        dls = slice_dls(scans, cache=False if side == 'items' else cache, **kw)
        if side == 'items':
            for sid in dls.store.ids: dls.store[sid]          # today's store: volumes loaded once, then kept in RAM
        rate(dls.train, 2, min_s=0)
        out['slices_s'] = rate(dls.train, batches)
        aug, name = (reference_augment(repo) if side == 'items' else (Augment(default_augs(), seed=0), 'fused'))
        rate(dls.train, 1, aug, min_s=0)
        out.update(aug_slices_s=rate(dls.train, max(4, batches//4), aug), augment=name)
    elif side in ('items-4w', 'cached-4w'):
        base = pss(os.getpid())
        dls = slice_dls(scans, cache=False if side == 'items-4w' else cache, num_workers=4, **kw)
        peak, it = 0, iter(dls.train)
        kids = lambda: [int(p) for p in open(f'/proc/{os.getpid()}/task/{os.getpid()}/children').read().split()]
        for k in range(batches):
            try: next(it)
            except StopIteration: it = iter(dls.train); next(it)
            if k % 4 == 3: peak = max(peak, sum(pss(p) for p in [os.getpid(), *kids()]))
        out.update(loader_mb=(peak - base)/2**20, cache_mb=getattr(dls.store, 'nbytes', 0)/2**20)
    out['peak_rss_mb'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024
    return out

def data_wait(data:Path, steps:int, cache:str, threads:int)->dict:
    "Share of a bf16 training step (U-Net at the papers' widths, 128² batches of 16) spent waiting for the next batch."
    import torch
    torch.set_num_threads(threads)
    from medseg.data import slice_dls
    from medseg.models import UNet, PAPER_WIDTHS
    from medseg.losses import dice_loss
    dls = slice_dls(scans_of(data, 'ixi'), cache=cache, augs='default', **loader_kw('ixi', 128))
    net = UNet(1, 1, widths=PAPER_WIDTHS); opt = torch.optim.Adam(net.parameters(), 1e-3)
    it, wait, total = iter(dls.train), [], []
    for k in range(steps + 1):
        t0 = time.perf_counter()
        x, y = next(it)
        t1 = time.perf_counter()
        with torch.autocast('cpu', torch.bfloat16): loss = dice_loss(net(x).float(), y, batch=True)
        opt.zero_grad(); loss.backward(); opt.step()
        t2 = time.perf_counter()
        if k: wait.append(t1 - t0); total.append(t2 - t0)
    return dict(step_s=statistics.median(total), wait_s=statistics.median(wait), wait_share=sum(wait)/sum(total), steps=steps, threads=threads)

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('data', nargs='?', default=os.environ.get('MEDSEG_DATA'), help='the shared data folder (default: $MEDSEG_DATA)')
    ap.add_argument('--repeats', type=int, default=3)
    ap.add_argument('--batches', type=int, default=40, help='batches timed per repeat')
    ap.add_argument('--threads', type=int, default=1, help='threads of the data-wait training (the loaders: one)')
    ap.add_argument('--steps', type=int, default=5, help='training steps of the data-wait figure')
    ap.add_argument('--side', default=None, help=argparse.SUPPRESS)                 # internal: one measurement
    ap.add_argument('--which', default='ixi', help=argparse.SUPPRESS)
    ap.add_argument('--size', type=int, default=128, help=argparse.SUPPRESS)
    ap.add_argument('--cache', default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if not a.data: sys.exit("give the shared data folder (or set MEDSEG_DATA)")
    data, repo = Path(a.data), Path(__file__).resolve().parents[1]
    if a.side == 'wait': print(json.dumps(data_wait(data, a.steps, a.cache, a.threads))); return
    if a.side: print(json.dumps(run_side(a.side, data, a.which, a.size, a.batches, a.cache, repo))); return

    def sub(side, which='ixi', size=128, cache=None):
        env = {**os.environ, 'OMP_NUM_THREADS': str(a.threads if side == 'wait' else 1)}
        r = subprocess.run([sys.executable, __file__, str(data), '--side', side, '--which', which, '--size', str(size), '--cache', cache or '',
                            '--batches', str(a.batches), '--steps', str(a.steps), '--threads', str(a.threads)],
                           capture_output=True, text=True, env=env)
        if r.returncode: sys.exit(f"{side} {which} {size}: failed\n{r.stderr[-3000:]}")
        return json.loads(r.stdout.strip().splitlines()[-1])

    work = Path(tempfile.mkdtemp(prefix='medseg-bench-loader-'))
    rows, figures = [], {}
    for which in ('ixi', 'ct'):
        for size in SIZES:
            builds = [sub('build', which, size, str(work/f'b{k}-{which}-{size}')) for k in range(a.repeats)]
            cache = str(work/f'b0-{which}-{size}')
            runs = {s: [sub(s, which, size, cache) for _ in range(a.repeats)] for s in ('items', 'cached')}
            med = lambda s, k: statistics.median(r[k] for r in runs[s])
            row = dict(data=which, size=size, slices=builds[0]['slices'], cache_mb=round(builds[0]['cache_mb'], 1), dtype=builds[0]['dtype'],
                       build_s=round(statistics.median(b['build_s'] for b in builds), 2), build_workers=builds[0]['build_workers'],
                       items_slices_s=round(med('items', 'slices_s')), cached_slices_s=round(med('cached', 'slices_s')),
                       items_aug_slices_s=round(med('items', 'aug_slices_s')), cached_aug_slices_s=round(med('cached', 'aug_slices_s')),
                       items_peak_rss_mb=round(med('items', 'peak_rss_mb')), cached_peak_rss_mb=round(med('cached', 'peak_rss_mb')),
                       reference_augment=runs['items'][0]['augment'])
            row['speedup'] = round(row['cached_slices_s']/row['items_slices_s'], 2)
            row['aug_speedup'] = round(row['cached_aug_slices_s']/row['items_aug_slices_s'], 2)
            rows.append(row)
            print(json.dumps(row), file=sys.stderr)
    mem = {s: sub(s, 'ixi', 256, str(work/'b0-ixi-256')) for s in ('cached-4w', 'items-4w')}
    wait = sub('wait', 'ixi', 128, str(work/'b0-ixi-128'))
    r = {(x['data'], x['size']): x for x in rows}
    ratio = mem['cached-4w']['loader_mb']/mem['cached-4w']['cache_mb']
    targets = dict(cached_10x_at_128=all(r[d, 128]['speedup'] >= 10 for d in ('ixi', 'ct')),
                   cached_4x_at_256=all(r[d, 256]['speedup'] >= 4 for d in ('ixi', 'ct')),
                   aug_3x_at_256=all(r[d, 256]['aug_speedup'] >= 3 for d in ('ixi', 'ct')),
                   workers4_memory_below_1_5x=ratio < 1.5, data_wait_below_5pct=wait['wait_share'] < 0.05)
    import shutil; shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(dict(bench='loader', threads=1, repeats=a.repeats, batches=a.batches, bs=16, table=rows,
                          workers4=dict(cached_loader_mb=round(mem['cached-4w']['loader_mb'], 1), cached_arrays_mb=round(mem['cached-4w']['cache_mb'], 1),
                                        ratio=round(ratio, 2), items_loader_mb=round(mem['items-4w']['loader_mb'], 1)),
                          data_wait=dict(wait, wait_share=round(wait['wait_share'], 4)),
                          reference=dict(items_slices_s={f'{d}_{s}': r[d, s]['items_slices_s'] for d, s in r},
                                         items_aug_slices_s={f'{d}_{s}': r[d, s]['items_aug_slices_s'] for d, s in r}),
                          targets=targets, target_met=all(targets.values()))))

if __name__ == '__main__': main()
