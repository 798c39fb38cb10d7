#!/usr/bin/env python
"""Benchmark medseg.registration: time and Dice reached by the relative similarity D_S.

    python bench/registration.py [DATA_DIR] [--repeats 3] [--pairs 8] [--size3d 128] [--threads 1] [--only SECTION ...]
        [--coop-size 240] [--coop-batch 4] [--coop-steps 3]

Sections (each a function `bench_<name>(args) -> dict` listed in `SECTIONS`; `main` runs them in order, prints a
table per section and collects their dicts into the final JSON line under `sections`):

* `toy2d` — `--pairs` toy pairs of `medseg.synthetic.toy_pairs` (240 x 240 blobs). Pure translations
  (`deform=0`): translation D_S. Default pairs (smooth deformation of up to 6 px, then a translation of up to
  32 px): translation and elastic D_S. Per pair: plain Dice, D_S, and the median over `--repeats` calls of the
  time of one `relative_similarity` call on that pair; plus the time per pair of one batched call on all pairs.
* `blob3d` — one `--size3d`^3 pair: a blob (union of 4 random ellipsoids) and its copy deformed by a smooth
  random field (coarse 8^3 random vectors, linearly upsampled, largest vector 4 voxels) and shifted by
  (5, -7, 3) voxels; translation and elastic D_S (3D defaults: fit on every 2nd voxel), median time of
  `--repeats` calls each.
* `spine` — the real T1/T2 spinal-cord masks (DATA_DIR/mr/sct_t{1,2}_cord, common 1 mm grid through
  `medseg.scans.PairedStore`, intersection of the fields of view): plain Dice, translation and elastic D_S (3D).
  The folder is DATA_DIR, else $MEDSEG_DATA, else `shared/data` beside the checkout (`medseg.io.data_dir`);
  skipped (reported as such) when none exists.

* `coop` — one training step of the cooperative method (`medseg.cooperative`, stage 3: S and R trained together
  on all three losses L_r, L_g, L_p) through the fastai Learner (`cooperative_learner`, a medseg `LeanLearner`)
  against the same math in a bare PyTorch loop, on `--coop-batch` toy pairs of `--coop-size`^2 (2D; S a U-Net of
  width 16 and depth 4, R the Registor with its default widths). Both sides start from one `state_dict`, use
  `torch.optim.Adam` (lr 1e-3; fastai's `OptimWrapper` around it in the Learner), and see one pre-made batch; the
  Learner iterates a loader that yields that batch `--coop-steps` times (empty validation), timed from
  `before_train` to `after_train` (loader, callbacks, forward, loss, backward, step, recorder). Checks: the loss of
  the first batch is the same on both sides (relative difference < 1e-5), the parameters after `--coop-steps`
  steps agree (< 1e-4), and the median Learner/bare time ratio over `--repeats` repeats (after one untimed warm-up
  each, alternating which side goes first) is <= 1.15.

Adding a section: write `def bench_<name>(args) -> dict` returning a dict with at least `checks` (a dict of
name -> bool, all of which must hold for the target) and a list of table rows `rows` (tuples name, seconds,
values...; a section may give its own `columns` names for its values), append `'<name>'` to `SECTIONS`, and it is
run, printed and included in the JSON line and in `target_met`.

`target_met` is True when every check of every section that ran holds. The checks of the first part:
D_S >= plain Dice for every pair and family; D_S elastic >= D_S translation for every pair; translation D_S >= 0.99
on every pure-translation toy pair (it is exactly 1 when the search is right); elastic D_S >= 0.99 on the
deformed toy pairs and >= 0.98 on the 3D blob pair (the blur-and-regress fit recovers the smooth deformation).
The registration timings are reported, not targeted; the `coop` section's Learner/bare ratio is targeted.
Threads default to 1 (`--threads`). The last line printed is one JSON object.
"""
from __future__ import annotations
import argparse, json, os, statistics, sys, time, warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run from a checkout without installing
warnings.filterwarnings('ignore', category=FutureWarning)
import numpy as np
import torch

from medseg.registration import relative_similarity, warp, upsample_flow
from medseg.synthetic import toy_pairs


def timed(fn, repeats):
    "(median seconds over `repeats` calls, result of the last call)."
    ts = []
    for _ in range(max(int(repeats), 1)):
        t0 = time.perf_counter(); out = fn(); ts.append(time.perf_counter() - t0)
    return statistics.median(ts), out


def blob_pair_3d(n, seed=0, amp=4., shift=(5, -7, 3)):
    "A 3D blob (n^3 bool) and its smoothly deformed (largest vector `amp` voxels) copy shifted by `shift` voxels."
    rng = np.random.default_rng(seed)
    g = np.indices((n,)*3, dtype=np.float32)
    m = np.zeros((n,)*3, bool)
    for _ in range(4):
        c, ax = n/2 + rng.uniform(-0.1, 0.1, 3)*n, rng.uniform(0.08, 0.18, 3)*n
        m |= (((g - c[:, None, None, None])/ax[:, None, None, None])**2).sum(0) <= 1
    del g
    u = upsample_flow(torch.from_numpy(rng.standard_normal((1, 3, 8, 8, 8)).astype(np.float32)), (n,)*3, unit='fine')
    u = u*amp/u.norm(dim=1).max() - torch.tensor(shift, dtype=torch.float32).view(1, 3, 1, 1, 1)
    s2 = warp(torch.from_numpy(m)[None, None].float(), u)[0, 0] > 0.5      # s2(x) = s1(x + u(x))
    return m, s2.numpy()


def bench_toy2d(args):
    "Toy 240 x 240 pairs: translation D_S on pure translations, translation and elastic D_S on deformed pairs."
    rows, checks, out = [], {}, {}
    for kind, deform, fams in (('pure translation', 0., ('translation',)), ('deformed', 6., ('translation', 'elastic'))):
        P = toy_pairs(args.pairs, seed=0, deform=deform)
        res = {}
        for fam in fams:
            per = [timed(lambda i=i: relative_similarity(P.s1[i], P.s2[i], fam), args.repeats) for i in range(args.pairs)]
            tb, rb = timed(lambda: relative_similarity(P.s1, P.s2, fam, ndim=2), 1)
            d = [r.dice for _, r in per]
            plain = [r.plain for _, r in per]
            res[fam] = dict(plain=plain, ds=d, s_per_pair=statistics.median(t for t, _ in per),
                            s_per_pair_batched=tb/args.pairs, ds_batched=rb.dice.tolist())
            rows.append((f'{kind}: {fam}', res[fam]['s_per_pair'], res[fam]['s_per_pair_batched'],
                         float(np.mean(plain)), float(np.min(d)), float(np.mean(d))))
            checks[f'{kind} {fam}: D_S >= Dice'] = bool(all(a >= b for a, b in zip(d, plain)))
        if deform == 0: checks['pure translation: D_S >= 0.99'] = bool(min(res['translation']['ds']) >= 0.99)
        else:
            checks['deformed: elastic >= translation'] = bool(all(e >= t for e, t in zip(res['elastic']['ds'], res['translation']['ds'])))
            checks['deformed: elastic D_S >= 0.99'] = bool(min(res['elastic']['ds']) >= 0.99)
        out[kind.replace(' ', '_')] = res
    return dict(rows=rows, checks=checks, pairs=args.pairs, size=240, **out)


def bench_blob3d(args):
    "One n^3 blob pair with a smooth deformation and a shift: translation and elastic D_S."
    t0 = time.perf_counter(); s1, s2 = blob_pair_3d(args.size3d); tgen = time.perf_counter() - t0
    rows, res = [], {}
    for fam in ('translation', 'elastic'):
        t, r = timed(lambda: relative_similarity(s1, s2, fam), args.repeats)
        res[fam] = dict(plain=r.plain, ds=r.dice, s_per_pair=t)
        rows.append((f'{args.size3d}^3 blob: {fam}', t, float('nan'), r.plain, r.dice, r.dice))
    checks = {'3D: D_S >= Dice': bool(min(res['translation']['ds'], res['elastic']['ds']) >= res['translation']['plain']),
              '3D: elastic >= translation': bool(res['elastic']['ds'] >= res['translation']['ds']),
              '3D: elastic D_S >= 0.98': bool(res['elastic']['ds'] >= 0.98)}
    return dict(rows=rows, checks=checks, size=args.size3d, voxels=[int(s1.sum()), int(s2.sum())], generate_s=tgen, **res)


def bench_spine(args):
    "Real T1/T2 spinal-cord masks on a common 1 mm grid: translation and elastic D_S (3D)."
    from medseg.io import data_dir
    try: mr = data_dir(args.data_dir)/'mr'
    except FileNotFoundError as e:
        print(f'spine: skipped ({e})'); return dict(skipped=True, rows=[], checks={})
    if not (mr/'sct_t1_cord.nii.gz').exists():
        print(f'spine: skipped (no {mr/"sct_t1_cord.nii.gz"})'); return dict(skipped=True, rows=[], checks={})
    from medseg.scans import PairedStore
    sc = PairedStore({'sct': tuple(mr/f'sct_{k}.nii.gz' for k in ('t1', 't1_cord', 't2', 't2_cord'))}, spacing=1.)['sct']
    c1, c2 = sc['s1'].array, sc['s2'].array
    rows, res = [], {}
    for fam in ('translation', 'elastic'):
        t, r = timed(lambda: relative_similarity(c1, c2, fam, max_shift=16), args.repeats)
        res[fam] = dict(plain=r.plain, ds=r.dice, s_per_pair=t)
        rows.append((f'spine cord {c1.shape}: {fam}', t, float('nan'), r.plain, r.dice, r.dice))
    checks = {'spine: D_S >= Dice': bool(res['translation']['ds'] >= res['translation']['plain']),
              'spine: elastic >= translation': bool(res['elastic']['ds'] >= res['translation']['ds'])}
    return dict(rows=rows, checks=checks, shape=list(c1.shape), skipped=False, **res)


COOP_TARGET = 1.15


class SameBatch:
    "A DataLoader stand-in yielding one pre-made (x1, x2, s1, s2) batch `n` times (two inputs)."
    n_inp = 2
    def __init__(self, batch, n): self.batch, self.n = batch, n
    def __len__(self): return self.n
    def __iter__(self):
        for _ in range(self.n): yield self.batch


def bench_coop(args):
    "One stage-3 cooperative training step: fastai Learner vs a bare PyTorch loop (same weights, batch, optimizer)."
    import copy
    from functools import partial
    from fastai.callback.core import Callback
    from fastai.data.core import DataLoaders
    from fastai.optimizer import OptimWrapper
    from medseg.cooperative import CoopNet, CoopLoss, cooperative_learner, scaled_toy

    torch.manual_seed(0)
    base = CoopNet(seg_width=16, seg_depth=4)
    with torch.no_grad():      # a non-trivial registor (its last layer starts at zero)
        base.R.field.weight.normal_(0, 0.01); base.R.field.bias.normal_(0, 0.1)
    batch = scaled_toy(args.coop_batch, args.coop_size, seed=0)
    lambdas = dict(r=0.5, g=1., p=0.5)
    n = args.coop_steps

    class Timer(Callback):
        order = -100
        def before_train(self): self.t0 = time.perf_counter()
        def after_train(self): self.dt = time.perf_counter() - self.t0
    class FirstLoss(Callback):
        def before_fit(self): self.first = None
        def after_loss(self):
            if self.first is None: self.first = self.learn.loss.item()

    def make_bare():
        m = copy.deepcopy(base).train()
        loss_fn = CoopLoss(m, lambdas)
        opt = torch.optim.Adam(m.parameters(), lr=1e-3)
        losses = []
        def run(k):
            for _ in range(k):
                x1, x2, s1, s2 = batch
                loss = loss_fn(m(x1, x2), s1, s2)
                loss.backward(); opt.step(); opt.zero_grad()
                losses.append(loss.item())
        return m, run, losses

    def make_learner():
        m = copy.deepcopy(base)
        dls = DataLoaders(SameBatch(batch, n), SameBatch(batch, 0), device='cpu')
        learn = cooperative_learner(dls, m, lambdas=lambdas, lr=1e-3, opt_func=partial(OptimWrapper, opt=torch.optim.Adam),
                                    cbs=[Timer(), FirstLoss()])
        learn.logger = lambda *a: None
        return m, learn

    # same math: first-batch loss and parameters after n steps, from identical weights
    mb, run, losses = make_bare(); run(n)
    ml, learn = make_learner(); learn.fit(1)
    first_l, first_b = learn.first_loss.first, losses[0]
    dparam = max((a - b).abs().max().item() for a, b in zip(mb.parameters(), ml.parameters()))
    rel = abs(first_l - first_b)/abs(first_b)
    # timing: fresh copies, one untimed warm-up each, then alternate
    _, run, _ = make_bare(); _, learn = make_learner()
    run(n); learn.fit(1)
    tb, tl = [], []
    for r in range(args.repeats):
        for side in (('bare', 'learner') if r % 2 == 0 else ('learner', 'bare')):
            if side == 'bare':
                t0 = time.perf_counter(); run(n); tb.append((time.perf_counter() - t0)/n)
            else:
                learn.fit(1); tl.append(learn.timer.dt/n)
    bare, lrn = statistics.median(tb), statistics.median(tl)
    ratio = lrn/bare
    checks = {'coop: same first-batch loss (Learner vs bare)': bool(rel < 1e-5),
              f'coop: same parameters after {n} steps': bool(dparam < 1e-4),
              f'coop: Learner/bare step time <= {COOP_TARGET}': bool(ratio <= COOP_TARGET)}
    rows = [(f'coop step {args.coop_batch}x{args.coop_size}^2: bare', bare, first_b, float('nan')),
            (f'coop step {args.coop_batch}x{args.coop_size}^2: Learner', lrn, first_l, ratio)]
    return dict(rows=rows, columns=('first loss', 'ratio'), checks=checks, size=args.coop_size, batch=args.coop_batch,
                steps=n, bare_s=bare, learner_s=lrn, ratio=ratio, target=COOP_TARGET, first_loss_bare=first_b,
                first_loss_learner=first_l, first_loss_rel_diff=rel, max_param_diff=dparam,
                spread_s=dict(bare=[min(tb), max(tb)], learner=[min(tl), max(tl)]))


SECTIONS = ['toy2d', 'blob3d', 'spine', 'coop']


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('data_dir', nargs='?', default=os.environ.get('MEDSEG_DATA'),
                    help='data folder (default $MEDSEG_DATA, else ../shared/data); only the spine section needs it')
    ap.add_argument('--repeats', type=int, default=3, help='timed calls per measurement (median reported)')
    ap.add_argument('--pairs', type=int, default=8, help='toy pairs per kind')
    ap.add_argument('--size3d', type=int, default=128, help='side of the 3D blob pair')
    ap.add_argument('--threads', type=int, default=1, help='torch threads (default 1)')
    ap.add_argument('--coop-size', type=int, default=240, help='coop: image side of the toy pairs')
    ap.add_argument('--coop-batch', type=int, default=4, help='coop: batch size')
    ap.add_argument('--coop-steps', type=int, default=3, help='coop: training steps per timed repeat')
    ap.add_argument('--only', nargs='+', choices=SECTIONS, default=None, help='run only these sections')
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    print(f'data dir: {a.data_dir}  repeats {a.repeats}  torch threads {torch.get_num_threads()}  device cpu')
    sections = {}
    for name in (a.only or SECTIONS):
        t0 = time.perf_counter()
        sec = globals()[f'bench_{name}'](a)
        sec['wall_s'] = time.perf_counter() - t0
        sections[name] = sec
        if sec.get('rows') and sec.get('columns'):
            print(f"\n=== {name} ===\n{'case':40s} {'s/step':>8s}" + ''.join(f' {c:>10s}' for c in sec['columns']))
            for case, t, *vals in sec['rows']:
                print(f'{case:40s} {t:8.3f}' + ''.join(f' {v:10.4f}' for v in vals))
        elif sec.get('rows'):
            print(f"\n=== {name} ===\n{'case':40s} {'s/pair':>8s} {'batched':>8s} {'Dice':>7s} {'min D_S':>8s} {'mean D_S':>9s}")
            for case, t, tb, plain, dmin, dmean in sec['rows']:
                print(f'{case:40s} {t:8.3f} {tb:8.3f} {plain:7.4f} {dmin:8.4f} {dmean:9.4f}')
        for k, v in sec.get('checks', {}).items(): print(f"  check {k}: {'ok' if v else 'FAILED'}")
    ok = all(v for s in sections.values() for v in s.get('checks', {}).values())
    for s in sections.values(): s.pop('rows', None); s.pop('columns', None)
    print(json.dumps(dict(bench='registration', threads=a.threads, repeats=a.repeats, sections=sections, target_met=bool(ok)),
                     separators=(',', ':'), default=lambda o: o.item() if hasattr(o, 'item') else str(o)))
    return ok


if __name__ == '__main__': main()
