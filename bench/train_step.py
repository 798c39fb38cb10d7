"""Time one training step through a fastai Learner against the same math in a bare PyTorch loop.

Two problems, in one run:

* `unet`: `medseg.models.UNet` (1 -> 1 channel, `--depth`, `--width`), BCE-with-logits on a fixed batch of
  `--batch` x 1 x `--size` x `--size`;
* `toy2net`: the two-network pattern of `medseg.trainer` (nbs/20_trainer.ipynb): segmenter A in the
  Learner's optimizer with a `TermLoss` (supervised BCE + 0.1 x adversarial term through `frozen_call(B)`),
  critic B stepped by an `ExtraOptimizer` on A's detached output.

What is the same on both sides: the initial weights (one `state_dict` copied into both models), the
batch (one pre-made tensor pair, reused for every step), the loss code, and the optimizer implementation:
`torch.optim.Adam` (lr 1e-3, PyTorch defaults) in the bare loop, and the same `torch.optim.Adam` wrapped by
fastai's `OptimWrapper` in the Learner (`opt_func=partial(OptimWrapper, opt=torch.optim.Adam)`, no weight
decay), so the arithmetic is identical. Before timing, three steps on each side from the same weights are
compared parameter by parameter (they must agree to float tolerance), so we know we time the same math.

What is timed:

* bare: `steps` iterations of forward, loss, backward, `opt.step()`, `opt.zero_grad()` (plus, for the toy,
  the critic's loss/backward/step/zero_grad), timed with `time.perf_counter` around the loop;
* Learner: `learn.fit(1)` over a DataLoader-like iterable that yields the same batch `steps` times and an
  empty validation set; a callback takes `perf_counter` at `before_train` and `after_train`, i.e. the
  whole training batch loop of the epoch: iterating the loader, moving the batch to the device, every
  callback event, forward, loss, backward, step, zero_grad, the extra optimizer, the recorder. Fit set-up
  and the (empty) validation are reported separately as `fit_ms` (whole `fit` per step) and not in the ratio.

The Learner is medseg's `LeanLearner` (fastai's `Learner` with an event dispatch that calls only the
callbacks defining each event; see nbs/20_trainer.ipynb), with `make_lean` (no progress bar) and a silent
logger; the Recorder, TrainEvalCallback and CastToTensor (fastai's defaults) stay. For comparison the table
also shows fastai's stock `Learner` with the same callbacks (`stock`; off with --no-stock). One warm-up fit / loop of `steps` is run first and
not timed. Each repeat times the bare loop and the Learner back to back (alternating which goes first), and
the medians over repeats are reported in ms per step.

Two more figures of a run (issue 13):

* **checkpoint cost**: real runs of `medseg.runner.train` on the shared CT scans (DATA_DIR/ct: a supervised U-Net
  at the default widths, and AccSeg-Net at CPU sizes towards DATA_DIR/mr) time the `Checkpointer`'s end-of-epoch work —
  capturing a snapshot of the learner's state (weights, optimizers, loaders, random states) and handing it to the
  background writer, which writes `checkpoints/last.pt` atomically (temporary file, fsync, rename) while the next
  epoch trains; the time training waits is set against the epoch itself (History's seconds, which include it), and
  the background write time is shown. Target: below 2 % of an epoch (median over the epochs). Off with --no-checkpoint.
* **precision**: the U-Net problem's Learner step with medseg's `Precision('bf16')` callback against float32
  (the same Learner, autocast on the device); reported, no target (a CPU without native bfloat16 runs it emulated).
  Off with --no-precision.

Usage: python bench/train_step.py [DATA_DIR] [--repeats 7] [--steps 20] [--size 128] [--batch 8] [--threads N]
The last line printed is one JSON object.
"""
from __future__ import annotations
import argparse, copy, json, os, statistics, sys, time, warnings
from functools import partial

warnings.filterwarnings('ignore', message='.*torch.jit.script.*')
import torch
from torch import nn
import torch.nn.functional as F
from fastai.callback.core import Callback
from fastai.data.core import DataLoaders
from fastai.learner import Learner
from fastai.optimizer import OptimWrapper

from medseg.trainer import (MultiNet, TermLoss, ExtraOptimizer, LeanLearner, frozen_call, multi_learner, make_lean)

TARGET = 1.15
CKPT_TARGET = 0.02   # checkpoint time / epoch time


class SameBatch:
    "A DataLoader stand-in yielding one pre-made batch `n` times."
    def __init__(self, batch, n): self.batch, self.n = batch, n
    def __len__(self): return self.n
    def __iter__(self):
        for _ in range(self.n): yield self.batch


class TrainTimer(Callback):
    "perf_counter at before_train / after_train: the time of the training batch loop."
    order = -100
    def before_train(self): self.t0 = time.perf_counter()
    def after_train(self): self.dt = time.perf_counter() - self.t0


def _dls(batch, steps, device):
    dls = DataLoaders(SameBatch(batch, steps), SameBatch(batch, 0), device=device)
    return dls


# ---------------------------------------------------------------- U-Net
def unet_problem(args, device):
    from medseg.models import UNet
    torch.manual_seed(0)
    base = UNet(in_ch=1, out_ch=1, depth=args.depth, width=args.width).to(device)
    x = torch.randn(args.batch, 1, args.size, args.size, device=device)
    y = (torch.rand(args.batch, 1, args.size, args.size, device=device) > 0.5).float()
    loss_fn = nn.BCEWithLogitsLoss()

    def make_bare():
        m = copy.deepcopy(base)
        opt = torch.optim.Adam(m.parameters(), lr=1e-3)
        def run(n):
            for _ in range(n):
                loss = loss_fn(m(x), y)
                loss.backward()
                opt.step()
                opt.zero_grad()
        return m, run

    def make_learner(steps, stock=False):
        m = copy.deepcopy(base)
        learn = (Learner if stock else LeanLearner)(_dls((x, y), steps, device), m, loss_func=loss_fn, lr=1e-3,
                        opt_func=partial(OptimWrapper, opt=torch.optim.Adam), cbs=TrainTimer())
        make_lean(learn); learn.logger = lambda *a: None
        return m, learn

    return make_bare, make_learner


# ---------------------------------------------------------------- two-network toy
def _seg_net(): return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                     nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 1, 1))
def _critic_net(): return nn.Sequential(nn.Conv2d(1, 8, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
                                        nn.Conv2d(8, 16, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
                                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 1))

class Toy2Net(MultiNet):
    def __init__(self): super().__init__(A=_seg_net(), B=_critic_net())
    def forward(self, x): return self.A(x)

def _bce(logits, target): return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, float(target)))
def _critic(B, pred, y): return _bce(B(y), 1) + _bce(B(torch.sigmoid(pred).detach()), 0)
def _toy_loss(model):
    return TermLoss({'sup': lambda p, y: F.binary_cross_entropy_with_logits(p, y),
                     'adv': lambda p, y: _bce(frozen_call(model.B, torch.sigmoid(p)), 1)}, weights={'adv': 0.1})

def toy_problem(args, device):
    torch.manual_seed(0)
    base = Toy2Net().to(device)
    x = torch.randn(args.batch, 1, args.size, args.size, device=device)
    y = (x > 0.3).float()

    def make_bare():
        m = copy.deepcopy(base)
        loss_fn = _toy_loss(m)
        opt_a = torch.optim.Adam(m.params('A'), lr=1e-3)
        opt_b = torch.optim.Adam(m.params('B'), lr=1e-3)
        def run(n):
            for _ in range(n):
                pred = m(x)
                loss = loss_fn(pred, y)
                loss.backward()
                opt_a.step()
                opt_a.zero_grad()
                opt_b.zero_grad()                 # drop anything the main loss left on B
                lb = _critic(m.B, pred, y)
                lb.backward()
                opt_b.step()
                opt_b.zero_grad()
        return m, run

    def make_learner(steps, stock=False):
        m = copy.deepcopy(base)
        adam = partial(OptimWrapper, opt=torch.optim.Adam)
        xo = ExtraOptimizer(lambda learn: learn.model.params('B'), lambda learn: _critic(learn.model.B, learn.pred, learn.yb[0]),
                            name='critic', opt_func=adam, lr=1e-3)
        learn = multi_learner(_dls((x, y), steps, device), m, _toy_loss(m), main='A', extra=xo, opt_func=adam,
                              lr=1e-3, cbs=TrainTimer(), lean=True)
        learn.logger = lambda *a: None
        if stock: learn.__class__ = Learner        # same object and callbacks, fastai's own event dispatch
        return m, learn

    return make_bare, make_learner


# ---------------------------------------------------------------- timing
def _sync(device):
    if device.type == 'cuda': torch.cuda.synchronize()

def check_same_math(make_bare, make_learner, device, n=3):
    "Largest |difference| of parameters after n steps from the same weights, bare vs each Learner variant."
    mb, run = make_bare()
    run(n)
    diffs = []
    for stock in (False, True):
        ml, learn = make_learner(n, stock=stock)
        learn.fit(1)
        diffs.append(max((a - b).abs().max().item() for a, b in zip(mb.parameters(), ml.parameters())))
    return max(diffs)

def time_problem(make_bare, make_learner, args, device):
    "Median ms/step of the bare loop, the medseg LeanLearner and (unless --no-stock) fastai's stock Learner."
    _, run = make_bare()
    sides = {'bare': None, 'learner': make_learner(args.steps)[1]}
    if args.stock: sides['stock'] = make_learner(args.steps, stock=True)[1]
    run(args.steps)
    for k, l in sides.items():
        if l is not None: l.fit(1)                     # warm-up, untimed
    _sync(device)
    times = {k: [] for k in sides}
    fit = []
    names = list(sides)
    for r in range(args.repeats):
        order = names[r % len(names):] + names[:r % len(names)]     # rotate who goes first
        for side in order:
            _sync(device); t0 = time.perf_counter()
            if side == 'bare': run(args.steps)
            else: sides[side].fit(1)
            _sync(device); dt = time.perf_counter() - t0
            if side == 'bare': times[side].append(dt/args.steps)
            else:
                times[side].append(sides[side].train_timer.dt/args.steps)
                if side == 'learner': fit.append(dt/args.steps)
    med = lambda v: statistics.median(v)*1000
    res = dict(learner_ms=med(times['learner']), bare_ms=med(times['bare']), fit_ms=med(fit),
               spread={k: (min(v)*1000, max(v)*1000) for k, v in times.items()})
    res['ratio'] = res['learner_ms']/res['bare_ms']
    if args.stock: res.update(stock_ms=med(times['stock']), stock_ratio=med(times['stock'])/res['bare_ms'])
    return res


# ---------------------------------------------------------------- checkpoint cost (real runs)
def checkpoint_cost(data_dir, args):
    "Median fraction of an epoch spent checkpointing, in real runs of the supervised U-Net and AccSeg-Net on the shared CT."
    import tempfile
    from pathlib import Path
    import medseg.runner as R
    ck_times, bg_times = [], []
    orig, orig_write = R.Checkpointer.after_epoch, R.RunContext._write
    def timed(self):
        t0 = time.perf_counter(); orig(self); ck_times.append(time.perf_counter() - t0)
    def timed_write(self, *a):
        t0 = time.perf_counter(); orig_write(self, *a); bg_times.append(time.perf_counter() - t0)
    R.Checkpointer.after_epoch, R.RunContext._write = timed, timed_write
    ct = Path(data_dir)/'ct'
    runs = {'supervised': dict(image_suffix='_ct', label_suffix='_liver', preprocess='ct', size=args.size, epochs=args.ckpt_epochs,
                               valid_pct=0.34, middle=0.5),
            'accseg': dict(image_suffix='_ct', label_suffix='_liver', target=str(Path(data_dir)/'mr'), target_suffix='_mr', size=args.size,
                           epochs=args.ckpt_epochs, decay_epochs=0, valid_pct=0.34, middle=0.5, sizes='cpu')}
    out = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for name, kw in runs.items():
                ck_times.clear(); bg_times.clear()
                r = R.train(name, ct, Path(tmp)/name, device=args.device, quiet=True, **kw)
                ep = r.history.seconds.tolist()
                fr = [c/e for c, e in zip(ck_times, ep)]
                size_mb = (Path(tmp)/name/'checkpoints'/'last.pt').stat().st_size/2**20
                out[name] = dict(checkpoint_ms=round(statistics.median(ck_times)*1000, 1), write_ms=round(statistics.median(bg_times)*1000, 1),
                                 epoch_s=round(statistics.median(ep), 2), fraction=round(statistics.median(fr), 5),
                                 checkpoint_mb=round(size_mb, 1), epochs=len(ep))
                print(f"checkpoint {name:10s}: training waits {out[name]['checkpoint_ms']:6.1f} ms per epoch (snapshot; the {size_mb:.1f} MB "
                      f"file is written in the background in {out[name]['write_ms']:.1f} ms), epoch {out[name]['epoch_s']:.2f} s -> "
                      f"{100*out[name]['fraction']:.2f} % of an epoch", flush=True)
    finally: R.Checkpointer.after_epoch, R.RunContext._write = orig, orig_write
    return out

# ---------------------------------------------------------------- bf16 vs fp32 steps
def precision_steps(args, device):
    "Median ms per U-Net Learner step in float32 and under bfloat16 autocast (medseg's Precision callback)."
    from medseg.trainer import Precision
    make_bare, make_learner = unet_problem(args, device)
    out = {}
    for prec in ('32', 'bf16'):
        _, learn = make_learner(args.steps)
        learn.add_cb(Precision(prec))
        learn.fit(1)                                         # warm-up
        ts = []
        for _ in range(args.repeats):
            _sync(device); learn.fit(1); _sync(device); ts.append(learn.train_timer.dt/args.steps)
        out[f'fp{prec}_ms' if prec == '32' else 'bf16_ms'] = round(statistics.median(ts)*1000, 2)
    out['bf16_over_fp32'] = round(out['bf16_ms']/out['fp32_ms'], 3)
    flags = set()
    try: flags = set(open('/proc/cpuinfo').read().split())
    except OSError: pass
    out['cpu_bf16'] = sorted(f for f in flags if 'bf16' in f) if device.type == 'cpu' else None
    print(f"precision (U-Net Learner step): fp32 {out['fp32_ms']:.2f} ms, bf16 {out['bf16_ms']:.2f} ms "
          f"(bf16/fp32 = {out['bf16_over_fp32']:.2f}; CPU bf16 instructions: {out['cpu_bf16']})", flush=True)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('data_dir', nargs='?', default=os.environ.get('MEDSEG_DATA'),
                   help='folder of the shared real scans (the checkpoint-cost runs train on DATA_DIR/ct and DATA_DIR/mr)')
    p.add_argument('--repeats', type=int, default=7)
    p.add_argument('--steps', type=int, default=20, help='training steps per repeat')
    p.add_argument('--size', type=int, default=128)
    p.add_argument('--batch', type=int, default=8)
    p.add_argument('--depth', type=int, default=4, help='U-Net depth')
    p.add_argument('--width', type=int, default=16, help='U-Net channels at the first level')
    p.add_argument('--threads', type=int, default=None, help='torch threads (default: torch default)')
    p.add_argument('--device', default='cpu')
    p.add_argument('--only', choices=['unet', 'toy2net'], default=None, help='time one problem only')
    p.add_argument('--no-checkpoint', dest='checkpoint', action='store_false', help='skip the checkpoint-cost runs')
    p.add_argument('--ckpt-epochs', type=int, default=3, help='epochs of each checkpoint-cost run')
    p.add_argument('--no-precision', dest='precision', action='store_false', help='skip the bf16 vs fp32 timing')
    p.add_argument('--no-stock', dest='stock', action='store_false',
                   help="do not also time fastai's stock Learner (same callbacks, fastai's event dispatch)")
    args = p.parse_args(argv)
    if args.threads: torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {device}, batch {args.batch}x1x"
          f"{args.size}x{args.size}, U-Net depth {args.depth} width {args.width}, {args.steps} steps x {args.repeats} "
          f"repeats; medians in ms per training step", flush=True)
    res = {}
    for name, prob in [('unet', unet_problem), ('toy2net', toy_problem)]:
        if args.only and args.only != name: continue
        mk_bare, mk_learn = prob(args, device)
        diff = check_same_math(mk_bare, mk_learn, device)
        if diff > 1e-4: sys.exit(f"{name}: Learner and bare loop diverge after 3 steps (max |dparam| = {diff:.3g})")
        r = time_problem(mk_bare, mk_learn, args, device)
        r['max_param_diff_3_steps'] = diff
        res[name] = r
    hdr = f"{'problem':9s} {'bare':>8s} {'learner':>8s} {'ratio':>6s}"
    if args.stock: hdr += f" {'stock':>8s} {'ratio':>6s}"
    hdr += f" {'fit/step':>8s}  {'bare min..max':>15s} {'learner min..max':>16s}  {'|dparam|':>8s}"
    print(hdr)
    for name, r in res.items():
        line = f"{name:9s} {r['bare_ms']:8.2f} {r['learner_ms']:8.2f} {r['ratio']:6.3f}"
        if args.stock: line += f" {r['stock_ms']:8.2f} {r['stock_ratio']:6.3f}"
        sb, sl = r['spread']['bare'], r['spread']['learner']
        line += f" {r['fit_ms']:8.2f}  {sb[0]:7.2f}..{sb[1]:<6.2f} {sl[0]:7.2f}..{sl[1]:<7.2f} {r['max_param_diff_3_steps']:9.1e}"
        print(line)
    print("learner = medseg LeanLearner (bench: training-loop time/step); stock = fastai Learner, same callbacks; "
          "fit/step = whole learner fit incl. set-up and empty validation; |dparam| = max parameter difference "
          "to the bare loop after 3 steps")
    out = {k: {m: round(v[m], 3) for m in ('learner_ms', 'bare_ms', 'ratio')} for k, v in res.items()}
    met = all(v['ratio'] <= TARGET for v in res.values())
    if args.precision: out['precision'] = precision_steps(args, device)
    if args.checkpoint:
        if not args.data_dir or not os.path.isdir(os.path.join(args.data_dir, 'ct')):
            sys.exit(f"the checkpoint-cost runs need the shared data folder (DATA_DIR/ct); got {args.data_dir!r} (or pass --no-checkpoint)")
        out['checkpoint'] = checkpoint_cost(args.data_dir, args)
        out['checkpoint_target'] = CKPT_TARGET
        met = met and all(v['fraction'] < CKPT_TARGET for v in out['checkpoint'].values())
    out.update(target=TARGET, target_met=met)
    print(json.dumps(out))
    return out


if __name__ == '__main__':
    main()
