"""One full training step (forward, softmax cross-entropy, backward, SGD momentum 0.9 update)
of zoo models in minidl against PyTorch (same layers, same weights, same batch), and against
DeZero for AlexNet-CIFAR without LRN; per-layer forward/backward times of AlexNet-CIFAR.

    python benchmarks/train_step.py [--device cpu|cuda|all] [--models a,b] [--repeat 10]
                                    [--warmup 2] [--tf32] [--json out.json]

Cases. CPU: alexnet-cifar batch 128, alexnet-cifar-nolrn batch 128 (LRN layers replaced by
Identity; also timed in DeZero, which has no LRN), ImageNet alexnet batch 16 (224x224),
vgg-fast-cifar batch 1024 and 512 (PyTorch channels-last, as airbench94 runs it), and
vgg-fast-cifar-frozen batch 512: the same net with the whitening bias frozen, the step of
epochs 4-10 of the recipe (nothing flows back into the first layer).
GPU (when both minidl.cuda and torch.cuda are available): alexnet-cifar 256,
vgg16-bn-cifar 256, alexnet 128.

Every (framework, model, device) case runs in a fresh subprocess of this script
(``--one framework:model:batch:device``), which prints one JSON line: the median step time
after ``--warmup`` steps over ``--repeat`` steps, and the peak memory of that process (peak
RSS on CPU; on GPU the CuPy pool's total bytes / torch.cuda.max_memory_allocated()).
Before timing, a separate subprocess (``--check``) compares the eval-mode forward outputs of
the frameworks on the same weights and batch. Prints the machine, date and versions, the
checks, the per-layer table, and the summary table last.
"""
import argparse
import contextlib
import datetime
import gc
import importlib.metadata
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..')
sys.path.insert(0, ROOT)
# NumPy first, as users write it (minidl re-applies its OpenBLAS setting on import)
import numpy as np  # noqa: E402
import minidl  # noqa: E402
import minidl.functional as F  # noqa: E402
import minidl.nn as mnn  # noqa: E402
from minidl.kernels import layout  # noqa: E402
import models  # noqa: E402
from ops import cpu_name  # noqa: E402  (benchmarks/ops.py, beside this script)

SEED = 0
LR, MOMENTUM = 0.01, 0.9
CPU_CASES = [('alexnet-cifar', 128), ('alexnet-cifar-nolrn', 128), ('alexnet', 16),
             ('vgg-fast-cifar', 1024), ('vgg-fast-cifar', 512), ('vgg-fast-cifar-frozen', 512)]
GPU_CASES = [('alexnet-cifar', 256), ('vgg16-bn-cifar', 256), ('alexnet', 128)]
DEZERO_MODELS = {'alexnet-cifar-nolrn'}   # timed in DeZero too (CPU only)
# PyTorch runs these channels-last (NHWC memory), as airbench94 does: its fastest layout
TORCH_CHANNELS_LAST = {'vgg-fast-cifar', 'vgg-fast-cifar-frozen'}
# the environment that undoes, in a peer's process, what importing minidl sets: glibc's
# default malloc, and OpenBLAS's default thread timeout (an empty value reads as unset)
PEERS_AS_SHIPPED = {'MINIDL_MALLOC': 'system', 'OPENBLAS_THREAD_TIMEOUT': ''}
BASE_MODEL = {'alexnet-cifar-nolrn': 'alexnet-cifar', 'vgg-fast-cifar-frozen': 'vgg-fast-cifar'}
LAYERS_CASE = ('alexnet-cifar', 128)      # the per-layer table (CPU)
FROZEN_NOTE = ("vgg-fast-cifar-frozen = vgg-fast-cifar with whiten.bias.requires_grad = False, "
               "as in epochs 4-10 of the recipe (the first 3 of 10 train that bias)")
NOLRN_NOTE = ("alexnet-cifar-nolrn = models.build('alexnet-cifar', lrn=False) (LRN layers are "
              "Identity): DeZero has no LRN, so the minidl/DeZero ratio is measured on it")


# ----------------------------------------------------------------------------- models, data
def build_minidl(name):
    """The minidl model for a case name, initialised from the fixed seed (so every
    subprocess builds the same weights)."""
    minidl.manual_seed(SEED)
    if name == 'alexnet-cifar-nolrn':
        return models.build('alexnet-cifar', lrn=False)
    if name == 'vgg-fast-cifar-frozen':
        model = models.build('vgg-fast-cifar')
        model.whiten.bias.requires_grad = False
        return model
    return models.build(name)


def input_size(name):
    return models.INPUT_SIZE[BASE_MODEL.get(name, name)]


def batch_arrays(name, batch, classes):
    """The same (x float32 NCHW, integer labels) in every process."""
    rng = np.random.default_rng(SEED + 1)
    s = input_size(name)
    x = rng.standard_normal((batch, 3, s, s), dtype=np.float32)
    return x, rng.integers(0, classes, batch).astype(np.int64)


def num_classes(model):
    return [m for m in model.modules() if isinstance(m, mnn.Linear)][-1].out_features


def check_zoo_layout(model):
    """The zoo models are ``classifier(features(x).flatten())``: the twins mirror that."""
    if not (isinstance(getattr(model, 'features', None), mnn.Sequential)
            and isinstance(getattr(model, 'classifier', None), mnn.Sequential)):
        raise TypeError(f"{type(model).__name__}: expected a features / classifier model")


def torch_layer(m):
    """The torch.nn layer with the same structure and options as minidl layer ``m``."""
    import torch.nn as tnn
    if isinstance(m, mnn.Conv2d):
        return tnn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding,
                          m.dilation, m.groups, bias=m.bias is not None)
    if isinstance(m, mnn.Linear):
        return tnn.Linear(m.in_features, m.out_features, bias=m.bias is not None)
    if isinstance(m, mnn.ReLU):
        return tnn.ReLU()  # not in-place: minidl's isn't either
    if isinstance(m, mnn.MaxPool2d):
        return tnn.MaxPool2d(m.kernel_size, m.stride, m.padding, ceil_mode=m.ceil_mode)
    if isinstance(m, mnn.AvgPool2d):
        return tnn.AvgPool2d(m.kernel_size, m.stride, m.padding)  # count_include_pad, as ours
    if isinstance(m, mnn.LocalResponseNorm):  # minidl's alpha is the paper's; torch's / size
        return tnn.LocalResponseNorm(m.size, m.alpha * m.size, m.beta, m.k)
    if isinstance(m, mnn.Dropout):
        return tnn.Dropout(m.p)
    if isinstance(m, (mnn.BatchNorm1d, mnn.BatchNorm2d)):
        cls = tnn.BatchNorm2d if isinstance(m, mnn.BatchNorm2d) else tnn.BatchNorm1d
        return cls(m.num_features, m.eps, m.momentum, affine=m.weight is not None,
                   track_running_stats=m.running_mean is not None)
    if isinstance(m, mnn.Flatten):
        return tnn.Flatten(m.start_dim, m.end_dim)
    if isinstance(m, mnn.Identity):
        return tnn.Identity()
    if isinstance(m, mnn.GELU):
        return tnn.GELU(approximate=m.approximate)
    if isinstance(m, (mnn.Tanh, mnn.Sigmoid)):
        return tnn.Tanh() if isinstance(m, mnn.Tanh) else tnn.Sigmoid()
    raise TypeError(f"no torch twin for minidl layer {type(m).__name__}")


def copy_weights(minidl_module, torch_module):
    """minidl state_dict (numpy/cupy arrays) -> torch module; only torch's BN
    num_batches_tracked may be missing."""
    import torch
    state = {k: torch.from_numpy(np.array(minidl.backend.to_numpy(v)))
             for k, v in minidl_module.state_dict().items()}
    result = torch_module.load_state_dict(state, strict=False)
    bad = [k for k in result.missing_keys if not k.endswith('num_batches_tracked')]
    if bad or result.unexpected_keys:
        raise RuntimeError(f"state_dict mismatch: missing {bad}, unexpected "
                           f"{result.unexpected_keys}")


def fast_cifar_twin(model):
    """The torch twin of models.fast_cifar.FastCIFAR: the same modules under the same names
    (so the same state_dict keys), the same frozen parameters, the weights copied."""
    import torch.nn as tnn

    class Group(tnn.Module):
        def __init__(self, g):
            super().__init__()
            for name in ('conv1', 'pool', 'norm1', 'conv2', 'norm2', 'act'):
                setattr(self, name, torch_layer(getattr(g, name)))

        def forward(self, x):
            x = self.act(self.norm1(self.pool(self.conv1(x))))
            return self.act(self.norm2(self.conv2(x)))

    class Twin(tnn.Module):
        def __init__(self):
            super().__init__()
            self.whiten, self.act = torch_layer(model.whiten), torch_layer(model.act)
            self.groups = tnn.Sequential(*[Group(g) for g in model.groups])
            self.pool, self.head = torch_layer(model.pool), torch_layer(model.head)

        def forward(self, x):
            x = self.groups(self.act(self.whiten(x)))
            return self.head(self.pool(x).flatten(1)) * model.scale

    twin = Twin()
    copy_weights(model, twin)
    frozen = {name for name, p in model.named_parameters() if not p.requires_grad}
    for name, p in twin.named_parameters():
        p.requires_grad = name not in frozen
    return twin.float()


def torch_twin(model):
    """torch Sequential(features, Flatten(1), classifier) walking the minidl layers in order,
    with the minidl weights copied (same state_dict keys)."""
    import torch.nn as tnn
    from collections import OrderedDict
    if isinstance(model, models.FastCIFAR):
        return fast_cifar_twin(model)
    check_zoo_layout(model)
    twin = tnn.Sequential(OrderedDict([
        ('features', tnn.Sequential(*[torch_layer(m) for m in model.features])),
        ('flatten', tnn.Flatten(1)),
        ('classifier', tnn.Sequential(*[torch_layer(m) for m in model.classifier]))]))
    copy_weights(model, twin)
    return twin.float()


def import_dezero():
    """dezero with two shims for NumPy 2 (DeZero 0.0.13 predates it):
    - ``np.int`` (removed in NumPy 1.24) is used at import time by dezero.transforms;
    - SoftmaxCrossEntropy.backward scales by the Python float 1/N as a 0-d float64 array and
      subtracts an integer one-hot, which under NumPy 2 turns the gradient, and so the whole
      classifier backward, into float64. The patched backward is the same formula in the
      logits' dtype, so the DeZero step is float32 throughout like the others."""
    if 'int' not in np.__dict__:
        np.int = int
    import dezero
    import dezero.functions as dF

    def backward(self, gy):
        x, t = self.inputs
        n, c = x.shape
        xp = dezero.cuda.get_array_module(t.data)
        onehot = xp.eye(c, dtype=x.dtype)[t.data]
        return (dF.softmax(x) - onehot) * (gy * x.dtype.type(1.0 / n))

    dF.SoftmaxCrossEntropy.backward = backward
    return dezero


def dezero_twin(model):
    """A DeZero model with the layers of minidl ``model`` (conv/linear/ReLU/max-pool/dropout;
    Identity skipped) and its weights copied (Linear weights transposed: DeZero's W is
    (in, out))."""
    dezero = import_dezero()
    L, dF = dezero.layers, dezero.functions
    check_zoo_layout(model)

    def square(v, what):
        v = (v, v) if isinstance(v, int) else tuple(v)
        if v[0] != v[1]:
            raise TypeError(f"DeZero twin: {what} {v} is not square")
        return v[0]

    class Twin(dezero.Model):
        def __init__(self):
            super().__init__()
            self.ops = []
            for part in (model.features, 'flatten', model.classifier):
                if part == 'flatten':
                    self.ops.append(lambda x: dF.reshape(x, (x.shape[0], -1)))
                    continue
                for m in part:
                    self.ops.append(self._layer(m))

        def _layer(self, m):
            if isinstance(m, mnn.Conv2d):
                if m.groups != 1 or m.dilation != (1, 1):
                    raise TypeError("DeZero twin: no groups / dilation in DeZero's conv")
                layer = L.Conv2d(m.out_channels, square(m.kernel_size, 'kernel'),
                                 square(m.stride, 'stride'), square(m.padding, 'padding'),
                                 nobias=m.bias is None, in_channels=m.in_channels)
                layer.W.data = np.array(m.weight.data, dtype=np.float32)
                if m.bias is not None:
                    layer.b.data = np.array(m.bias.data, dtype=np.float32)
            elif isinstance(m, mnn.Linear):
                layer = L.Linear(m.out_features, nobias=m.bias is None, in_size=m.in_features)
                layer.W.data = np.ascontiguousarray(m.weight.data.T, dtype=np.float32)
                if m.bias is not None:
                    layer.b.data = np.array(m.bias.data, dtype=np.float32)
            elif isinstance(m, mnn.ReLU):
                return dF.relu
            elif isinstance(m, mnn.MaxPool2d):
                if m.ceil_mode:
                    raise TypeError("DeZero twin: no ceil_mode pooling in DeZero")
                k, s, p = m.kernel_size, m.stride, m.padding
                # DeZero's pooling takes every window that fits, floor((H+2p-k)/s)+1 per
                # axis, as torch/minidl without ceil_mode (overlapping 3/2 included)
                return lambda x: dF.pooling(x, k, s, p)
            elif isinstance(m, mnn.Dropout):
                p = m.p
                return lambda x: dF.dropout(x, p)
            elif isinstance(m, mnn.Identity):
                return lambda x: x
            else:
                raise TypeError(f"DeZero twin: no DeZero layer for {type(m).__name__}")
            setattr(self, f"l{len(self.ops)}", layer)  # registers its parameters
            return layer

        def forward(self, x):
            for op in self.ops:
                x = op(x)
            return x

    return Twin()


# ----------------------------------------------------------------------------- timing
def rss_mb():
    """Peak resident set size of this process image, MB: VmHWM from /proc/self/status.
    ru_maxrss is the fallback only: Linux keeps it across fork + exec, so a child's value
    starts at the parent's peak (this script's parent has imported torch)."""
    try:
        with open('/proc/self/status') as f:
            return next(int(l.split()[1]) for l in f if l.startswith('VmHWM:')) / 1024.0
    except (OSError, StopIteration, ValueError):
        return ru_maxrss_mb()


def ru_maxrss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kB on Linux


def time_steps(step, sync, warmup, repeat):
    for _ in range(warmup):
        step()
    sync()
    times = []
    for _ in range(repeat):
        sync()
        t0 = time.perf_counter()
        step()
        sync()
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def set_torch_tf32(torch, on):
    torch.backends.cuda.matmul.allow_tf32 = bool(on)
    torch.backends.cudnn.allow_tf32 = bool(on)


def minidl_tf32(on):
    """Turn minidl's TF32 on when it has a switch; 'n/a' when it has none."""
    switch = getattr(minidl.cuda, 'allow_tf32', None)
    if switch is None:
        return 'n/a'
    if not on:
        return 'off (default)'
    if callable(switch):
        switch(True)
    else:
        minidl.cuda.allow_tf32 = True
    return 'on'


def build_twin(name, make_twin):
    """A peer's copy of the minidl model ``name`` and its class count; the minidl model
    itself is freed before timing, so that it does not count in the peer's memory."""
    model = build_minidl(name)
    classes = num_classes(model)
    twin = make_twin(model)
    del model
    gc.collect()
    return twin, classes


def run_one(spec, args):
    """Time one (framework, model, batch, device) case in this process; returns a dict."""
    framework, name, batch, device = spec.split(':')
    batch = int(batch)
    out = {'framework': framework, 'model': name, 'batch': batch, 'device': device,
           'warmup': args.warmup, 'repeat': args.repeat}
    gpu = device == 'cuda'
    if framework == 'minidl':
        out['rss_after_import_mb'] = rss_mb()
        model = build_minidl(name)
        x_np, t_np = batch_arrays(name, batch, num_classes(model))
        if gpu:
            out['tf32'] = minidl_tf32(args.tf32)
            model.to('cuda')
        x = minidl.tensor(x_np, device=device)
        t = minidl.backend.to_device(t_np, device)
        model.train()
        opt = minidl.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)

        def step():
            opt.zero_grad()
            loss = F.softmax_cross_entropy(model(x), t)
            loss.backward()
            opt.step()
        sync = minidl.cuda.synchronize if gpu else (lambda: None)
        out['times_ms'] = time_steps(step, sync, args.warmup, args.repeat)
        if gpu:
            out['gpu_peak_bytes'] = int(minidl.backend._cupy.get_default_memory_pool()
                                        .total_bytes())
    elif framework == 'torch':
        import torch
        out['rss_after_import_mb'] = rss_mb()
        out['torch_threads'] = torch.get_num_threads()
        twin, classes = build_twin(name, torch_twin)
        x_np, t_np = batch_arrays(name, batch, classes)
        x, t = torch.from_numpy(x_np), torch.from_numpy(t_np)
        if name in TORCH_CHANNELS_LAST:
            twin = twin.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
            out['layout'] = 'channels_last'
        if gpu:
            set_torch_tf32(torch, args.tf32)
            out['tf32'] = 'on' if args.tf32 else 'off'
            twin, x, t = twin.cuda(), x.cuda(), t.cuda()
            torch.cuda.reset_peak_memory_stats()
        twin.train()
        opt = torch.optim.SGD([p for p in twin.parameters() if p.requires_grad], lr=LR,
                              momentum=MOMENTUM)

        def step():
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(twin(x), t)
            loss.backward()
            opt.step()
        sync = torch.cuda.synchronize if gpu else (lambda: None)
        out['times_ms'] = time_steps(step, sync, args.warmup, args.repeat)
        if gpu:
            out['gpu_peak_bytes'] = int(torch.cuda.max_memory_allocated())
            out['gpu_peak_reserved_bytes'] = int(torch.cuda.max_memory_reserved())
    elif framework == 'dezero':
        if gpu:
            raise ValueError("the DeZero case is CPU only")
        dezero = import_dezero()
        out['rss_after_import_mb'] = rss_mb()
        twin, classes = build_twin(name, dezero_twin)
        x, t = batch_arrays(name, batch, classes)
        opt = dezero.optimizers.MomentumSGD(lr=LR, momentum=MOMENTUM).setup(twin)
        softmax_cross_entropy = dezero.functions.softmax_cross_entropy

        def step():
            twin.cleargrads()
            loss = softmax_cross_entropy(twin(x), t)
            loss.backward()
            opt.update()
        out['times_ms'] = time_steps(step, lambda: None, args.warmup, args.repeat)
    else:
        raise ValueError(f"unknown framework {framework!r}")
    out['ms'] = statistics.median(out['times_ms'])
    out['peak_rss_mb'] = rss_mb()
    out['ru_maxrss_mb'] = ru_maxrss_mb()
    return out


def run_check(spec):
    """Eval-mode forward of minidl vs its torch (and DeZero) twin on the same weights and
    batch: max |a - b| / max |b| relative to minidl's output."""
    import torch
    name, batch, device = spec.split(':')
    batch = int(batch)
    gpu = device == 'cuda'
    model = build_minidl(name)
    x_np, _ = batch_arrays(name, batch, num_classes(model))
    twin = torch_twin(model).eval()
    model.eval()
    if gpu:
        set_torch_tf32(torch, False)
        model.to('cuda')
        twin = twin.cuda()
    with minidl.no_grad():
        ours = minidl.backend.to_numpy(model(minidl.tensor(x_np, device=device)).data)
    with torch.no_grad():
        theirs = twin(torch.from_numpy(x_np).to(device)).cpu().numpy()

    def rel(a, b):
        return float(np.abs(a - b).max() / max(np.abs(a).max(), 1e-30))
    out = {'model': name, 'batch': batch, 'device': device, 'torch_rel_err': rel(ours, theirs),
           'dtype': str(ours.dtype) + '/' + str(theirs.dtype)}
    if name in DEZERO_MODELS and not gpu:
        dezero = import_dezero()
        dz = dezero_twin(build_minidl(name))
        with dezero.test_mode(), dezero.no_grad():
            out['dezero_rel_err'] = rel(ours, dz(x_np).data)
    return out


# ----------------------------------------------------------------------------- per layer
def describe(m):
    kind = type(m).__name__
    if isinstance(m, mnn.Conv2d):
        return (f"Conv2d {m.in_channels}->{m.out_channels} k{m.kernel_size[0]} "
                f"s{m.stride[0]} p{m.padding[0]}")
    if isinstance(m, mnn.MaxPool2d):
        return f"MaxPool2d {m.kernel_size}/{m.stride}"
    if isinstance(m, mnn.LocalResponseNorm):
        return f"LRN {m.size}"
    if isinstance(m, mnn.Linear):
        return f"Linear {m.in_features}->{m.out_features}"
    return kind


def run_layers(spec, args):
    """Forward and backward time of every conv / pool / LRN / linear / BN / GELU layer,
    alone, at the input shape it sees in the model (recorded by forward hooks)."""
    import torch
    name, batch = spec.split(':')
    batch = int(batch)
    model = build_minidl(name)
    x_np, _ = batch_arrays(name, batch, num_classes(model))
    kinds = (mnn.Conv2d, mnn.MaxPool2d, mnn.LocalResponseNorm, mnn.Linear, mnn.BatchNorm2d,
             mnn.GELU)
    seen = []
    data = minidl.tensor(x_np)
    handles = [m.register_forward_hook(
        lambda mod, inputs, output, path=path: seen.append(
            (path, mod, inputs[0].shape, inputs[0] is not data,
             layout.is_channels_last(inputs[0].data))))
        for path, m in model.named_modules() if isinstance(m, kinds)]
    model.train()
    with minidl.no_grad():
        model(data)
    for h in handles:
        h.remove()
    rng = np.random.default_rng(SEED + 2)
    rows = []
    def tile():
        return minidl.winograd_tile(model.winograd) if hasattr(model, 'winograd') else \
            contextlib.nullcontext()
    for path, mod, shape, input_grad, channels_last in seen:
        # the input needs a gradient, as in the training step, except where it is the data;
        # it (and the upstream gradient) in the memory layout the layer sees in the model,
        # for PyTorch too
        lay = layout.to_channels_last if channels_last else (lambda a: a)
        x_in = lay(rng.standard_normal(shape, dtype=np.float32))
        with minidl.no_grad():
            out_shape = mod(minidl.tensor(x_in)).shape
        g_np = rng.standard_normal(out_shape, dtype=np.float32)
        g_np = lay(g_np) if len(out_shape) == 4 else g_np
        tmod = torch_layer(mod)
        copy_weights(mod, tmod)
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        tmod = tmod.to(memory_format=fmt)

        def minidl_pass(x=minidl.Tensor(x_in, requires_grad=input_grad),
                        g=minidl.Tensor(g_np)):
            x.grad = None
            mod.zero_grad()
            t0 = time.perf_counter()
            with tile():  # the model's Winograd tiling (vgg-fast-cifar: F(4x4))
                y = mod(x)
            t1 = time.perf_counter()
            y.backward(g)
            return t1 - t0, time.perf_counter() - t1

        def torch_pass(x=torch.tensor(x_in).contiguous(memory_format=fmt)
                       .requires_grad_(input_grad), g=torch.from_numpy(g_np)):
            x.grad = None
            tmod.zero_grad(set_to_none=True)
            t0 = time.perf_counter()
            y = tmod(x)
            t1 = time.perf_counter()
            y.backward(g)
            return t1 - t0, time.perf_counter() - t1

        row = {'layer': path, 'what': describe(mod), 'input': list(shape),
               'input_grad': input_grad}
        for label, fn in (('minidl', minidl_pass), ('torch', torch_pass)):
            for _ in range(args.warmup):
                fn()
            fwd, bwd = zip(*(fn() for _ in range(args.repeat)))
            row[label + '_fwd_ms'] = statistics.median(fwd) * 1e3
            row[label + '_bwd_ms'] = statistics.median(bwd) * 1e3
        rows.append(row)
        print(f"  layer {path} {describe(mod)}: minidl "
              f"{row['minidl_fwd_ms']:.1f}+{row['minidl_bwd_ms']:.1f} ms, torch "
              f"{row['torch_fwd_ms']:.1f}+{row['torch_bwd_ms']:.1f} ms", file=sys.stderr)
    return {'model': name, 'batch': batch, 'rows': rows, 'torch_threads': torch.get_num_threads()}


# ----------------------------------------------------------------------------- parent
def subprocess_json(args, *flags, env=None):
    """Run this script with ``flags`` in a fresh interpreter; its last JSON stdout line."""
    cmd = [sys.executable, os.path.abspath(__file__), *flags,
           '--repeat', str(args.repeat), '--warmup', str(args.warmup)]
    cmd += ['--tf32'] if args.tf32 else []
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=dict(os.environ, **(env or {})))
    sys.stderr.write(proc.stderr)
    lines = [l for l in proc.stdout.splitlines() if l.startswith('{')]
    if proc.returncode or not lines:
        tail = (proc.stderr.strip().splitlines() or ['no output'])[-1]
        return {'error': f"exit {proc.returncode}: {tail}"}
    return json.loads(lines[-1])


def version(dist):
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def blas_name():
    try:
        return np.show_config(mode='dicts')['Build Dependencies']['blas']['name']
    except Exception:
        return '?'


def environment():
    """Versions and devices, without importing DeZero or running anything."""
    env = {'torch': None, 'torch_threads': None, 'torch_cuda': False, 'gpu': None}
    try:
        import torch
        env.update(torch=torch.__version__, torch_threads=torch.get_num_threads(),
                   torch_cuda=torch.cuda.is_available())
        if env['torch_cuda']:
            env['gpu'] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    env['minidl_cuda'] = minidl.cuda.is_available()
    cupy = minidl.backend._cupy
    env['cupy'] = getattr(cupy, '__version__', None)
    env['dezero'] = version('dezero')
    return env


def header(env):
    versions = (f"Python {platform.python_version()} | numpy {np.__version__} ({blas_name()}), "
                f"minidl {minidl.__version__} ({minidl.cpu.describe()}), torch {env['torch'] or 'absent'}"
                + (f" ({env['torch_threads']} threads)" if env['torch'] else '')
                + f", dezero {env['dezero'] or 'absent'}, cupy {env['cupy'] or 'absent'}")
    return (f"# {datetime.date.today()} | {cpu_name()} | {os.cpu_count()} cores | "
            f"GPU: {env['gpu'] or 'none'} | {versions}")


def fmt(v, spec='.1f', width=9):
    return f"{v:{width}{spec}}" if isinstance(v, (int, float)) else f"{'-':>{width}s}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--device', choices=('cpu', 'cuda', 'all'), default='all')
    parser.add_argument('--models', help='comma-separated case models (default: all), from '
                        + ', '.join(sorted({n for n, _ in CPU_CASES + GPU_CASES})))
    parser.add_argument('--repeat', type=int, default=10, help='timed steps (median)')
    parser.add_argument('--warmup', type=int, default=2, help='untimed steps first')
    parser.add_argument('--tf32', action='store_true', help='GPU: allow TF32 matmul/conv')
    parser.add_argument('--json', help='also write the results to this file')
    parser.add_argument('--peers', choices=('as-shipped', 'like-minidl'),
                        default='as-shipped',
                        help="CPU settings of the PyTorch and DeZero processes, which import "
                        "minidl only to copy the weights: 'as-shipped' (default) undoes what "
                        "that import sets (MINIDL_MALLOC=system, OpenBLAS's default thread "
                        "timeout); 'like-minidl' leaves them minidl's settings")
    parser.add_argument('--layers-case', default=':'.join(map(str, LAYERS_CASE)),
                        help='MODEL:BATCH of the per-layer table (default %(default)s)')
    parser.add_argument('--one', help=argparse.SUPPRESS)      # framework:model:batch:device
    parser.add_argument('--check', help=argparse.SUPPRESS)    # model:batch:device
    parser.add_argument('--layers', help=argparse.SUPPRESS)   # model:batch
    args = parser.parse_args()
    if args.one or args.check or args.layers:
        result = (run_one(args.one, args) if args.one else run_check(args.check)
                  if args.check else run_layers(args.layers, args))
        print(json.dumps(result))
        return

    env = environment()
    notes, wanted = [], None
    if args.models:
        wanted = {m.strip() for m in args.models.split(',') if m.strip()}
        unknown = wanted - {n for n, _ in CPU_CASES + GPU_CASES}
        if unknown:
            parser.error(f"--models: unknown {sorted(unknown)}")
    cases = []
    if args.device in ('cpu', 'all'):
        cases += [(n, b, 'cpu') for n, b in CPU_CASES]
    if args.device in ('cuda', 'all'):
        if env['minidl_cuda'] and env['torch_cuda']:
            cases += [(n, b, 'cuda') for n, b in GPU_CASES]
        else:
            notes.append(f"GPU cases skipped: minidl.cuda.is_available() = {env['minidl_cuda']}"
                         f", torch.cuda.is_available() = {env['torch_cuda']}")
    cases = [c for c in cases if wanted is None or c[0] in wanted]
    if env['torch'] is None:
        parser.error("PyTorch is needed for the comparison (pip install torch)")
    use_dezero = env['dezero'] is not None
    if any(n in DEZERO_MODELS for n, _, _ in cases):
        notes.append(NOLRN_NOTE)
        notes.append("DeZero: " + ("weights copied from the minidl model; float32 with the "
                                   "NumPy-2 shims of import_dezero() (np.int, a float32 "
                                   "softmax cross-entropy backward)" if use_dezero else
                                   "not installed, skipped (pip install dezero)"))
    if any(n == 'vgg-fast-cifar-frozen' for n, _, _ in cases):
        notes.append(FROZEN_NOTE)
    if any(n in TORCH_CHANNELS_LAST for n, _, _ in cases):
        notes.append("PyTorch runs " + ', '.join(sorted(TORCH_CHANNELS_LAST)) + " channels-last "
                     "(model and batch in torch.channels_last), as airbench94 does")
    if any(d == 'cuda' for _, _, d in cases):
        state = 'on' if args.tf32 else 'off'
        notes.append(f"GPU TF32: torch {state}; minidl " + (
            state if hasattr(minidl.cuda, 'allow_tf32') else 'n/a (no minidl.cuda.allow_tf32)'))

    wino = minidl.kernels.winograd  # the tiling each model's convolutions get: its own
    tiles = {name: 0 if not wino.ENABLED else getattr(build_minidl(name), 'winograd', None)
             or wino.TILING.m for name in dict.fromkeys(n for n, _, d in cases if d == 'cpu')}
    if tiles:
        notes.append("minidl's 3x3 convolutions on the CPU: " + ', '.join(
            f"{n} {'im2col only' if m == 0 else f'F({m}x{m})'}"
            for n, m in tiles.items()) + " (Winograd from 64 channels for F(4x4), 128 for "
            "F(2x2): the models' own choice, else the default; MINIDL_WINOGRAD="
            f"{os.environ.get('MINIDL_WINOGRAD', '') or 'unset'})")
    notes.append(f"CPU settings: minidl's own ({minidl.cpu.describe()}); PyTorch and DeZero "
                 + ("as shipped (MINIDL_MALLOC=system, OPENBLAS_THREAD_TIMEOUT empty: their "
                    "defaults)" if args.peers == 'as-shipped' else "with minidl's settings")
                 + f" (--peers {args.peers}); the per-layer table runs both frameworks in one "
                   f"process with minidl's settings")
    checks, results = [], []
    for name, batch, device in cases:
        print(f"case {name} batch {batch} on {device}", file=sys.stderr)
        check = subprocess_json(args, '--check', f"{name}:{batch}:{device}")
        checks.append(check)
        row = {'case': name, 'batch': batch, 'device': device}
        frameworks = ['minidl', 'torch'] + (
            ['dezero'] if use_dezero and name in DEZERO_MODELS and device == 'cpu' else [])
        for fw in frameworks:
            r = subprocess_json(args, '--one', f"{fw}:{name}:{batch}:{device}",
                                env=None if fw == 'minidl' or args.peers == 'like-minidl'
                                else PEERS_AS_SHIPPED)
            row[fw] = r
            print(f"  {fw}: " + (r['error'] if 'error' in r else f"{r['ms']:.1f} ms"),
                  file=sys.stderr)
        results.append(row)

    layers = None
    layers_case = args.layers_case.split(':')
    layers_case = (layers_case[0], int(layers_case[1]))
    if args.device in ('cpu', 'all') and (wanted is None or layers_case[0] in wanted):
        print(f"per-layer times of {layers_case[0]} batch {layers_case[1]} on cpu",
              file=sys.stderr)
        layers = subprocess_json(args, '--layers', f"{layers_case[0]}:{layers_case[1]}")

    # -- print
    def mem(r):
        if 'error' in r or not r:
            return None
        return r['gpu_peak_bytes'] / 2 ** 20 if r['device'] == 'cuda' else r['peak_rss_mb']

    print(header(env))
    print(f"# one training step = forward, softmax cross-entropy, backward, SGD(lr={LR}, "
          f"momentum={MOMENTUM}) update; float32; median of {args.repeat} steps after "
          f"{args.warmup} warm-up steps; each case in a fresh process")
    for note in notes:
        print(f"# {note}")
    for c in checks:
        if 'error' in c:
            print(f"# check FAILED to run: {c['error']}")
            continue
        status = 'ok' if c['torch_rel_err'] < 1e-3 and c.get('dezero_rel_err', 0) < 1e-3 \
            else 'MISMATCH'
        extra = (f", DeZero {c['dezero_rel_err']:.1e}" if 'dezero_rel_err' in c else '')
        print(f"# check {c['model']} batch {c['batch']} {c['device']}: eval forward, max|diff|/"
              f"max|minidl| vs torch {c['torch_rel_err']:.1e}{extra} (< 1e-3: {status})")

    if layers and 'rows' in layers:
        rows = layers['rows']
        print()
        print(f"# per layer: {layers['model']} batch {layers['batch']}, cpu, each layer alone "
              f"at its input shape in the model, median of {args.repeat}; ms; backward gives "
              f"the input gradient except for * (the data, as in the step)")
        print(f"{'layer':13s} {'what':24s} {'input':18s} {'minidl fwd':>10s} {'torch fwd':>9s} "
              f"{'ratio':>6s} {'minidl bwd':>10s} {'torch bwd':>9s} {'ratio':>6s} "
              f"{'total ratio':>11s}")
        for r in rows:
            mt, tt = r['minidl_fwd_ms'] + r['minidl_bwd_ms'], r['torch_fwd_ms'] + r['torch_bwd_ms']
            shape = 'x'.join(map(str, r['input'])) + ('' if r['input_grad'] else '*')
            print(f"{r['layer']:13s} {r['what']:24s} {shape:18s} "
                  f"{r['minidl_fwd_ms']:10.1f} {r['torch_fwd_ms']:9.1f} "
                  f"{r['minidl_fwd_ms'] / r['torch_fwd_ms']:6.2f} {r['minidl_bwd_ms']:10.1f} "
                  f"{r['torch_bwd_ms']:9.1f} {r['minidl_bwd_ms'] / r['torch_bwd_ms']:6.2f} "
                  f"{mt / tt:11.2f}")
        by_kind = {}
        for r in rows:
            kind = r['what'].split()[0]
            k = by_kind.setdefault(kind, [0.0, 0.0])
            k[0] += r['minidl_fwd_ms'] + r['minidl_bwd_ms']
            k[1] += r['torch_fwd_ms'] + r['torch_bwd_ms']
        ms = sum(v[0] for v in by_kind.values())
        ts = sum(v[1] for v in by_kind.values())
        for kind, (a, b) in by_kind.items():
            print(f"{'sum ' + kind:38s} minidl {a:8.1f}  torch {b:8.1f}  ratio {a / b:5.2f}  "
                  f"excess {a - b:8.1f} ms")
        print(f"{'sum of the layers above':38s} minidl {ms:8.1f}  torch {ts:8.1f}  ratio "
              f"{ms / ts:5.2f}  excess {ms - ts:8.1f} ms")
        full = next((r for r in results if (r['case'], r['batch'], r['device'])
                     == (*layers_case, 'cpu')), None)
        if full and 'ms' in full['minidl'] and 'ms' in full['torch']:
            fm, ft = full['minidl']['ms'], full['torch']['ms']
            print(f"{'full training step (summary below)':38s} minidl {fm:8.1f}  torch {ft:8.1f}"
                  f"  ratio {fm / ft:5.2f}  excess {fm - ft:8.1f} ms")
            print(f"{'rest (activations, loss, SGD, ...)':38s} minidl {fm - ms:8.1f}  torch "
                  f"{ft - ts:8.1f}")
    elif layers:
        print(f"# per-layer table FAILED: {layers['error']}")

    print()
    print("# summary: ms per training step (median); ratio = minidl/torch (lower is better); "
          "speed-up = dezero/minidl (higher: minidl faster); peak MB = peak RSS of the process "
          "on cpu, GPU pool bytes on cuda (CuPy pool total / torch max_memory_allocated)")
    print(f"{'case':22s} {'dev':4s} {'batch':>5s} {'minidl ms':>9s} {'torch ms':>9s} "
          f"{'ratio':>6s} {'dezero ms':>9s} {'speed-up':>8s} {'minidl MB':>9s} "
          f"{'torch MB':>9s} {'dezero MB':>9s}")
    for row in results:
        m, t, d = row['minidl'], row['torch'], row.get('dezero', {})
        mm, tm, dm = m.get('ms'), t.get('ms'), d.get('ms')
        print(f"{row['case']:22s} {row['device']:4s} {row['batch']:5d} {fmt(mm)} {fmt(tm)} "
              f"{fmt(mm / tm if mm and tm else None, '.2f', 6)} {fmt(dm)} "
              f"{fmt(dm / mm if dm and mm else None, '.2f', 8)} {fmt(mem(m), '.0f')} "
              f"{fmt(mem(t), '.0f')} {fmt(mem(d), '.0f')}")
        for fw in ('minidl', 'torch', 'dezero'):
            if 'error' in row.get(fw, {}):
                print(f"#   {fw} failed: {row[fw]['error']}")
    base = {}
    for row in results:
        for fw in ('minidl', 'torch', 'dezero'):
            if row['device'] == 'cpu' and 'rss_after_import_mb' in row.get(fw, {}):
                base.setdefault(fw, row[fw]['rss_after_import_mb'])
    if base:
        print("# RSS after imports, before the model: "
              + ', '.join(f"{fw} {v:.0f} MB" for fw, v in base.items()))

    if args.json:
        data = {'header': header(env), 'env': env, 'args': vars(args), 'notes': notes,
                'checks': checks, 'cases': results, 'layers': layers}
        tmp = args.json + '.tmp'
        with open(tmp, 'w') as f:
            json.dump(data, f, indent=1)
        os.replace(tmp, args.json)


if __name__ == '__main__':
    main()
