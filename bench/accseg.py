"""AccSeg-Net costs: MIND descriptors (time, peak memory), and one training step through the fastai Learner
against the same math in a bare PyTorch loop.

Part 1, MIND (printed for the record, no target), on random inputs:

* `mind_ssc` on a 3D volume 1 x 1 x 128^3 (`--mind3d`), `mind` 2D on a batch 16 x 1 x 256^2 (`--mind2d`, `--mind-bs`),
  and `mind_loss(a, b)` (its default kind, MIND-SSC) forward + backward on the 2D batch (gradient into `b`);
* time: median of `--mind-repeats` calls after one warm-up call, ms;
* peak memory, MiB, the extra memory the call needs above what was allocated before it:
  - CUDA: `torch.cuda.max_memory_allocated()` minus `memory_allocated()` before the call (peak stats reset first);
  - CPU: one fresh subprocess per measurement (imports torch and `medseg.mind` only; torch's CPU tensors live in
    malloc'd memory, which `tracemalloc` does not see): it builds the inputs, runs the same function once on a tiny
    input (lazy initialisation of kernels and thread pools), resets the kernel's peak-RSS counter to the current RSS
    (writing 5 to /proc/self/clear_refs), reads the resident set size VmRSS, runs the call once, and reads the peak
    VmHWM from /proc/self/status: peak - RSS before = the call's peak extra resident memory. This is exact up to the
    allocator reusing already-resident free memory (small: glibc returns large blocks to the OS on free); a
    calibration row (a 64 MiB tensor) checks the method. Without clear_refs it falls back to
    `resource.getrusage(RUSAGE_SELF).ru_maxrss`, and a figure that did not raise the process's high-water mark is
    printed as an upper bound (<=).
  - also, for `mind_loss`, the bytes of the distinct tensors autograd saves for the backward pass (summed through
    `torch.autograd.graph.saved_tensors_hooks`), a device-independent count of the activation memory.

Part 2, one AccSeg-Net training step at `--size`^2 (256), batch 1 and 4 (`--batches`), networks `CPU_SIZES`
(`--paper-sizes`: `PAPER_SIZES`), data: phantom CT slices (source, with liver masks) and phantom MR slices (target),
in [0, 1] (`medseg.accseg.phantom_slices`; synthetic, no data needed). Sides, each on its own copy of one
`AccSegNet` built from seed 0 (same initial weights):

* learner: `accseg_learner(dls, model, lean=True)`: medseg's LeanLearner with the main fastai Adam
  (lr 2e-4, betas (0.5, 0.999), eps 1e-8, no weight decay) over G, S, H, the `ExtraOptimizer` stepping D on
  `d_loss`, and the metrics `accseg_learner` installs (one per loss term, D, fake Dice; also on training batches);
* bare (the reference): the same math written out: `pred = model(xa, xb)`, `AccSegLoss(model)(pred, ya)`,
  backward, step and zero_grad of the same fastai `Adam` object type with the same hyper-parameters, then what
  `ExtraOptimizer.after_batch` does: D's grads to None, `d_loss` (0.5 (gan(D(real), 1) + gan(D(fake.detach()), 0)),
  through `model.discriminate`), backward, step of D's own fastai Adam, D's grads to None. Same optimizer
  implementation on both sides, so the ratio is the Learner + callback overhead;
* torch-adam (with `--torch-adam`, default on CUDA only since each CPU step is seconds): the bare loop with
  `torch.optim.Adam(lr=2e-4, betas=(0.5, 0.999))` for both optimizers instead of fastai's `Adam`.

Honesty check first: every side starts from the same weights and the same global RNG state (PatchNCE draws its
locations from it) and runs one step on the same batch; the first-batch main loss and D loss must agree to 1e-4
relative between the sides (asserted), and the max parameter difference to the Learner after that step is printed.
These check steps are also the warm-up.

Timing follows bench/train_step.py: the batch is pre-made on the device and a DataLoader stand-in yields it
`--steps` times; the Learner side is timed by a callback taking `perf_counter` at before_train / after_train
(the whole training batch loop: every callback event, forward, loss, backward, both optimizers, metrics, recorder);
the whole `fit(1)` per step (set-up, empty validation, epoch-end) is shown separately (fit/step) and not in the ratio.
The bare loop is timed around `--steps` iterations. Each repeat runs every side back to back, rotating which goes
first; repeats go on up to `--repeats` (7), stopping after `--min-repeats` (3) once the timing of that batch size
has taken `--budget` seconds (100: a CPU step at 256^2 takes seconds). Medians over repeats of ms per step are
reported; also the median of the per-repeat learner/bare ratios (paired: both sides measured next to each other)
and the ratio of the minima, both less sensitive to other processes on the machine.

Target: learner step <= 1.15 x bare loop, for every batch size.

    python bench/accseg.py [DATA_DIR] [--threads 2] [--device cpu] [--repeats 7] [--budget 100] [--steps 1] [--paper-sizes]

Ends with one JSON line.
"""
from __future__ import annotations
import argparse, copy, gc, json, os, resource, statistics, subprocess, sys, time, warnings
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run from a checkout without installing
warnings.filterwarnings('ignore', message='.*torch.jit.script.*')
import torch

TARGET = 1.15
LOSS_RTOL = 1e-4


def _sync(device):
    if device.type == 'cuda': torch.cuda.synchronize()


# ---------------------------------------------------------------- part 1: MIND
def _mind_case(name, n3d, n2d, bs2d, device):
    "(call, tiny warm-up call, description) of one MIND measurement, inputs already built."
    from medseg.mind import mind, mind_ssc, mind_loss
    g = torch.Generator().manual_seed(0)
    if name == 'mind_ssc_3d':
        x = torch.rand(1, 1, n3d, n3d, n3d, generator=g).to(device)
        small = torch.rand(1, 1, 8, 8, 8, generator=g).to(device)
        return (lambda: mind_ssc(x)), (lambda: mind_ssc(small)), f'mind_ssc 3D 1x1x{n3d}^3'
    if name == 'mind_2d':
        x = torch.rand(bs2d, 1, n2d, n2d, generator=g).to(device)
        small = torch.rand(2, 1, 16, 16, generator=g).to(device)
        return (lambda: mind(x)), (lambda: mind(small)), f'mind 2D {bs2d}x1x{n2d}^2'
    if name == 'mind_loss_2d':
        a = torch.rand(bs2d, 1, n2d, n2d, generator=g).to(device)
        b = torch.rand(bs2d, 1, n2d, n2d, generator=g).to(device).requires_grad_()
        sa, sb = torch.rand(2, 1, 16, 16, generator=g).to(device), torch.rand(2, 1, 16, 16, generator=g).to(device).requires_grad_()
        def fb(a, b):
            b.grad = None
            loss = mind_loss(a, b)
            loss.backward()
            return loss
        return (lambda: fb(a, b)), (lambda: fb(sa, sb)), f'mind_loss (ssc) fwd+bwd 2D {bs2d}x1x{n2d}^2'
    raise ValueError(name)

MIND_CASES = ('mind_ssc_3d', 'mind_2d', 'mind_loss_2d')

def _status_bytes(key):
    "A memory figure of this process from /proc/self/status (VmRSS, VmHWM), bytes."
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(key + ':'): return int(line.split()[1])*1024
    raise KeyError(key)

def _mem_child(args):
    "Subprocess: peak extra resident memory of one CPU call; prints one JSON line."
    if args.mem_child == 'calib':                                     # a known allocation: 64 MiB written once
        fn, warm = (lambda: torch.ones(16*2**20)), (lambda: torch.ones(16))
    else: fn, warm, _ = _mind_case(args.mem_child, args.mind3d, args.mind2d, args.mind_bs, torch.device('cpu'))
    warm(); gc.collect()
    try:                                                              # reset the peak RSS (VmHWM) to the current RSS
        with open('/proc/self/clear_refs', 'w') as f: f.write('5')
        reset = True
    except OSError: reset = False
    before = _status_bytes('VmRSS')
    hw_before = _status_bytes('VmHWM') if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss*1024
    out = fn()
    hw_after = _status_bytes('VmHWM') if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss*1024
    del out
    print(json.dumps(dict(peak_mib=(hw_after - before)/2**20, exact=reset or hw_after > hw_before, reset=reset)))

def _cpu_peak_mib(name, args):
    "Run one `--mem-child` subprocess: (peak extra MiB, is an upper bound only)."
    cmd = [sys.executable, str(Path(__file__).resolve()), '--mem-child', name, '--threads', str(torch.get_num_threads()),
           '--mind3d', str(args.mind3d), '--mind2d', str(args.mind2d), '--mind-bs', str(args.mind_bs)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode: sys.exit(f"memory subprocess for {name} failed:\n{p.stderr[-2000:]}")
    m = json.loads(p.stdout.strip().splitlines()[-1])
    return m['peak_mib'], not m['exact']

def _saved_bytes(fn):
    "Bytes of the distinct storages autograd saves for backward during fn()."
    seen = {}
    def pack(t):
        s = t.untyped_storage(); seen[s.data_ptr()] = s.nbytes(); return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t): fn()
    return sum(seen.values())

def bench_mind(args, device):
    res = {}
    for name in MIND_CASES:
        fn, warm, desc = _mind_case(name, args.mind3d, args.mind2d, args.mind_bs, device)
        fn(); _sync(device)                                                  # warm-up, untimed
        ts = []
        for _ in range(args.mind_repeats):
            _sync(device); t0 = time.perf_counter(); out = fn(); _sync(device); ts.append(time.perf_counter() - t0)
            del out
        r = dict(desc=desc, ms=1000*statistics.median(ts), min_ms=1000*min(ts))
        if device.type == 'cuda':
            gc.collect(); torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device)
            out = fn(); _sync(device)
            r.update(peak_mib=(torch.cuda.max_memory_allocated(device) - base)/2**20, mem_method='cuda.max_memory_allocated', upper_bound=False)
            del out
        else:
            peak, ub = _cpu_peak_mib(name, args)
            r.update(peak_mib=peak, mem_method='subprocess: VmHWM (reset via /proc/self/clear_refs) - VmRSS before', upper_bound=ub)
        if name == 'mind_loss_2d': r['saved_for_backward_mib'] = _saved_bytes(fn)/2**20
        res[name] = r
    if device.type == 'cpu':
        peak, ub = _cpu_peak_mib('calib', args)
        res['calibration'] = dict(desc='calibration: torch.ones, 64 MiB', ms=None, min_ms=None, peak_mib=peak,
                                  upper_bound=ub, mem_method=res[MIND_CASES[0]]['mem_method'])
    return res


# ---------------------------------------------------------------- part 2: training step
class SameBatch:
    "A DataLoader stand-in yielding one pre-made batch `n` times (`n` may be changed between fits)."
    n_inp = 2                                                      # (xa, xb) inputs, ya target
    def __init__(self, batch, n): self.batch, self.n = batch, n
    def __len__(self): return self.n
    def __iter__(self):
        for _ in range(self.n): yield self.batch
    def to(self, device): return self


def _callbacks():
    from fastai.callback.core import Callback
    class TrainTimer(Callback):
        "perf_counter at before_train / after_train: the time of the training batch loop."
        order = -100
        def before_train(self): self.t0 = time.perf_counter()
        def after_train(self):
            _sync(next(self.learn.model.parameters()).device); self.dt = time.perf_counter() - self.t0
    class LossLog(Callback):
        "Main loss and D loss of every training batch (after the ExtraOptimizer, order 40)."
        order = 50
        def __init__(self): self.log, self.on = [], True
        def after_batch(self):
            if self.on and self.training: self.log.append((self.learn.loss.item(), self.learn.loss_func.terms['D'].item()))
    return TrainTimer, LossLog


def make_batch(bs, size, device):
    "(xa, xb, ya): phantom CT slices with liver masks, phantom MR slices of other anatomies; (bs, 1, size, size)."
    from medseg.accseg import phantom_slices
    xa, ya = phantom_slices(range(bs), 'ct', size)
    xb, _ = phantom_slices(range(1000, 1000 + bs), 'mr', size)
    return tuple(torch.from_numpy(v)[:, None].float().contiguous().to(device) for v in (xa, xb, ya))


def step_problem(batch, sizes, device):
    "Side constructors for one batch: each returns (model, run(n) or learner, losses-log)."
    from fastai.data.core import DataLoaders
    from fastai.optimizer import Adam
    from medseg.accseg import AccSegNet, AccSegLoss, accseg_learner, d_loss
    TrainTimer, LossLog = _callbacks()
    torch.manual_seed(0)
    base = AccSegNet(**sizes).to(device)
    xa, xb, ya = batch
    lr, betas = 2e-4, (0.5, 0.999)

    def make_bare(torch_adam=False):
        m = copy.deepcopy(base).train()
        loss_fn = AccSegLoss(m)
        main, dpar = m.params('G', 'S', 'H'), m.params('D')
        if torch_adam:
            opt, dopt = (torch.optim.Adam(ps, lr=lr, betas=betas, eps=1e-8) for ps in (main, dpar))
        else:
            opt, dopt = (Adam(ps, lr=lr, mom=betas[0], sqr_mom=betas[1], eps=1e-8, wd=0.) for ps in (main, dpar))
        log = []
        def run(n, record=False):
            for _ in range(n):
                pred = m(xa, xb)                                   # the Learner: pred = model(*xb)
                loss = loss_fn(pred, ya)                           # loss_func(pred, *yb)
                loss.backward()
                opt.step()
                opt.zero_grad()
                for p in dpar: p.grad = None                       # ExtraOptimizer.after_batch
                dl = d_loss(SimpleNamespace(model=m, pred=pred, loss_func=loss_fn))
                dl.backward()
                dopt.step()
                for p in dpar: p.grad = None
                if record: log.append((loss.item(), dl.item()))
        return m, run, log

    def make_learner():
        m = copy.deepcopy(base)
        sb = SameBatch((xa, xb, ya), 1)
        learn = accseg_learner(DataLoaders(sb, SameBatch((xa, xb, ya), 0)), model=m, lean=True)
        learn.add_cbs([TrainTimer(), LossLog()])
        learn.logger = lambda *a: None
        return m, learn, sb

    return make_bare, make_learner


def _max_param_diff(m1, m2): return max((a - b).abs().max().item() for a, b in zip(m1.parameters(), m2.parameters()))

def bench_step(batch, sizes, args, device):
    make_bare, make_learner = step_problem(batch, sizes, device)
    # honesty check (also the warm-up): same weights, same RNG state, one step on each side
    sides, logs = {}, {}
    ml, learn, sb = make_learner()
    sb.n = 1; torch.manual_seed(1); learn.fit(1); _sync(device)
    logs['learner'] = list(learn.loss_log.log); learn.loss_log.on = False
    sides['learner'] = learn
    names = ['bare'] + (['torch-adam'] if args.torch_adam else [])
    models = {'learner': ml}
    for name in names:
        m, run, log = make_bare(torch_adam=name == 'torch-adam')
        torch.manual_seed(1); run(1, record=True); _sync(device)
        sides[name], logs[name], models[name] = run, log, m
    ref = logs['learner'][0]
    check = {}
    for name in names:
        rel = max(abs(a - b)/max(abs(b), 1e-12) for a, b in zip(logs[name][0], ref))
        check[name] = dict(loss=logs[name][0][0], d_loss=logs[name][0][1], loss_rel_diff=rel,
                           param_diff_1_step=_max_param_diff(models[name], ml))
        if rel > LOSS_RTOL:
            sys.exit(f"batch {batch[0].shape[0]}: {name} and Learner disagree on the first batch: "
                     f"(loss, D loss) {logs[name][0]} vs {ref} (rel diff {rel:.3g} > {LOSS_RTOL})")
    check['learner'] = dict(loss=ref[0], d_loss=ref[1])
    # timing
    sb.n = args.steps
    order0 = ['learner'] + names
    times, fit = {k: [] for k in order0}, []
    t_start, r = time.perf_counter(), 0
    while r < args.repeats and (r < args.min_repeats or time.perf_counter() - t_start < args.budget):
        order = order0[r % len(order0):] + order0[:r % len(order0)]     # rotate who goes first
        for side in order:
            _sync(device); t0 = time.perf_counter()
            if side == 'learner': learn.fit(1)
            else: sides[side](args.steps)
            _sync(device); dt = time.perf_counter() - t0
            if side == 'learner':
                times[side].append(learn.train_timer.dt/args.steps); fit.append(dt/args.steps)
            else: times[side].append(dt/args.steps)
        r += 1
    med = lambda v: 1000*statistics.median(v)
    res = dict(learner_ms=med(times['learner']), bare_ms=med(times['bare']), fit_ms=med(fit),
               learner_min_ms=1000*min(times['learner']), bare_min_ms=1000*min(times['bare']),
               spread={k: (1000*min(v), 1000*max(v)) for k, v in times.items()}, check=check, repeats=r,
               ratio_paired=statistics.median(a/b for a, b in zip(times['learner'], times['bare'])))
    res['ratio'], res['ratio_min'] = res['learner_ms']/res['bare_ms'], res['learner_min_ms']/res['bare_min_ms']
    if args.torch_adam:
        res.update(torch_adam_ms=med(times['torch-adam']), torch_adam_min_ms=1000*min(times['torch-adam']))
        res['ratio_torch_adam'] = res['learner_ms']/res['torch_adam_ms']
    return res


# ---------------------------------------------------------------- main
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('data', nargs='?', default=os.environ.get('MEDSEG_DATA'),
                    help='data folder (default: $MEDSEG_DATA); accepted for a uniform interface, not used: inputs are synthetic')
    ap.add_argument('--threads', type=int, default=None, help='torch threads (default: torch default)')
    ap.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    ap.add_argument('--repeats', type=int, default=7, help='most timing repeats of the training step (medians reported)')
    ap.add_argument('--min-repeats', type=int, default=3, help='fewest timing repeats')
    ap.add_argument('--budget', type=float, default=100., help='no new repeat once the timing of a batch size has taken this long (s)')
    ap.add_argument('--steps', type=int, default=1, help='training steps per repeat and side')
    ap.add_argument('--size', type=int, default=256, help='training slice side')
    ap.add_argument('--batches', type=int, nargs='+', default=[1, 4], help='training batch sizes')
    ap.add_argument('--paper-sizes', action='store_true', help='PAPER_SIZES networks (default: CPU_SIZES)')
    ap.add_argument('--torch-adam', dest='torch_adam', action='store_true', default=None,
                    help='also time the bare loop with torch.optim.Adam (default: on for CUDA, off on CPU)')
    ap.add_argument('--no-torch-adam', dest='torch_adam', action='store_false')
    ap.add_argument('--mind-repeats', type=int, default=5, help='timed calls per MIND measurement (median reported)')
    ap.add_argument('--mind3d', type=int, default=128, help='side of the 3D MIND-SSC volume')
    ap.add_argument('--mind2d', type=int, default=256, help='side of the 2D MIND images')
    ap.add_argument('--mind-bs', type=int, default=16, help='batch of the 2D MIND images')
    ap.add_argument('--skip-mind', action='store_true', help='training step only')
    ap.add_argument('--mem-child', default=None, choices=MIND_CASES + ('calib',), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.threads: torch.set_num_threads(args.threads)
    if args.mem_child: return _mem_child(args)
    device = torch.device(args.device)
    if args.torch_adam is None: args.torch_adam = device.type == 'cuda'
    from medseg.accseg import CPU_SIZES, PAPER_SIZES
    sizes = PAPER_SIZES if args.paper_sizes else CPU_SIZES
    t_start = time.perf_counter()
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {device}"
          f"{' (' + torch.cuda.get_device_name(device) + ')' if device.type == 'cuda' else ''}; "
          f"data dir {args.data} (unused: synthetic inputs)", flush=True)

    mind_res = {}
    if not args.skip_mind:
        mind_res = bench_mind(args, device)
        print(f"\nMIND (random inputs; median of {args.mind_repeats} calls after a warm-up; peak = extra memory of one call)")
        print(f"{'case':42s} {'ms':>9s} {'min ms':>9s} {'peak MiB':>10s}")
        for r in mind_res.values():
            tm = f"{r['ms']:9.1f} {r['min_ms']:9.1f}" if r['ms'] is not None else f"{'-':>9s} {'-':>9s}"
            print(f"{r['desc']:42s} {tm} {('<=' if r['upper_bound'] else '') + format(r['peak_mib'], '.1f'):>10s}")
        if 'mind_loss_2d' in mind_res:
            print(f"mind_loss: tensors saved for backward {mind_res['mind_loss_2d']['saved_for_backward_mib']:.1f} MiB; "
                  f"peak memory method: {next(iter(mind_res.values()))['mem_method']}", flush=True)

    step = {}
    sname = 'PAPER_SIZES' if args.paper_sizes else 'CPU_SIZES'
    print(f"\nAccSeg-Net training step, {args.size}x{args.size}, {sname} {sizes}; {args.steps} step(s) x {args.min_repeats}..{args.repeats} repeats (budget {args.budget:.0f} s) "
          f"per side after a 1-step check/warm-up; ms per step", flush=True)
    for bs in args.batches:
        t0 = time.perf_counter()
        step[bs] = bench_step(make_batch(bs, args.size, device), sizes, args, device)
        print(f"  batch {bs} done in {time.perf_counter() - t0:.0f} s", flush=True)
    print("\ncheck, first batch from the same weights and RNG state (loss = G/S/H objective, D = d_loss):")
    for bs, r in step.items():
        c = r['check']
        line = f"  batch {bs}: learner loss {c['learner']['loss']:.6f} D {c['learner']['d_loss']:.6f}"
        for k in [k for k in c if k != 'learner']:
            line += f"; {k}: max rel diff {c[k]['loss_rel_diff']:.1e}, max |dparam| after 1 step {c[k]['param_diff_1_step']:.1e}"
        print(line)
    hdr = f"\n{'batch':>5s} {'repeats':>7s} {'bare':>9s} {'learner':>9s} {'ratio':>6s} {'paired':>6s} {'min ratio':>9s}"
    if args.torch_adam: hdr += f" {'torch-adam':>10s} {'ratio':>6s}"
    hdr += f" {'fit/step':>9s}  {'bare min..max':>17s} {'learner min..max':>17s}"
    print(hdr)
    for bs, r in step.items():
        line = f"{bs:5d} {r['repeats']:7d} {r['bare_ms']:9.1f} {r['learner_ms']:9.1f} {r['ratio']:6.3f} {r['ratio_paired']:6.3f} {r['ratio_min']:9.3f}"
        if args.torch_adam: line += f" {r['torch_adam_ms']:10.1f} {r['ratio_torch_adam']:6.3f}"
        sb, sl = r['spread']['bare'], r['spread']['learner']
        line += f" {r['fit_ms']:9.1f}  {sb[0]:8.1f}..{sb[1]:<8.1f} {sl[0]:8.1f}..{sl[1]:<8.1f}"
        print(line)
    print("bare = same math, same fastai Adam, no Learner (the reference); learner = accseg_learner(lean=True), training "
          "loop time/step; ratio = learner/bare (medians), paired = median of the per-repeat ratios, min ratio = of the minima; fit/step = whole learner fit "
          f"incl. set-up and empty validation; torch-adam = bare loop with torch.optim.Adam. Target: ratio <= {TARGET}.")
    total = time.perf_counter() - t_start
    print(f"total {total:.0f} s")
    r3 = lambda v: round(v, 3)
    out = dict(bench='accseg', device=str(device), threads=torch.get_num_threads(), size=args.size, sizes=sname,
               steps=args.steps,
               mind={k: dict(desc=v['desc'], ms=None if v['ms'] is None else r3(v['ms']), peak_mib=r3(v['peak_mib']), peak_upper_bound=v['upper_bound'],
                             **({'saved_for_backward_mib': r3(v['saved_for_backward_mib'])} if 'saved_for_backward_mib' in v else {}))
                     for k, v in mind_res.items()},
               step={f'bs{bs}': dict(learner_ms=r3(r['learner_ms']), bare_ms=r3(r['bare_ms']), ratio=r3(r['ratio']),
                                     ratio_paired=r3(r['ratio_paired']), ratio_min=r3(r['ratio_min']), repeats=r['repeats'], fit_ms=r3(r['fit_ms']),
                                     first_loss_rel_diff=max(v['loss_rel_diff'] for k, v in r['check'].items() if k != 'learner'),
                                     **({'torch_adam_ms': r3(r['torch_adam_ms'])} if args.torch_adam else {}))
                     for bs, r in step.items()},
               reference='bare PyTorch loop, same model/loss/fastai Adam (bare_ms)', target=TARGET,
               target_met=all(r['ratio'] <= TARGET for r in step.values()), total_s=round(total, 1))
    print(json.dumps(out, allow_nan=False))
    return out


if __name__ == '__main__':
    main()
