"""Forward+backward time of conv2d, max_pool2d and local_response_norm at AlexNet-on-CIFAR
sizes (batch 128, float32), minidl against PyTorch's CPU ops measured in the same run.

    python benchmarks/ops.py [--batch 128] [--repeat 5] [--json out.json]

Prints the machine, date and versions, then one row per op: median milliseconds of
minidl and PyTorch (after one warm-up) and the ratio minidl / PyTorch.
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
# NumPy first, as users write it (minidl re-applies its OpenBLAS setting on import)
import numpy as np  # noqa: E402
import minidl  # noqa: E402
import minidl.functional as F  # noqa: E402

try:
    import torch
except ImportError:
    torch = None


def cases(n):
    """(name, input shape, minidl fn(x, w), torch fn(x, w), weight shape or None)."""
    tf = torch.nn.functional if torch else None
    return [
        ('conv1 3->64 3x3 p1 @32', (n, 3, 32, 32), (64, 3, 3, 3),
         lambda x, w: F.conv2d(x, w, padding=1), lambda x, w: tf.conv2d(x, w, padding=1)),
        ('conv2 64->192 5x5 p2 @16', (n, 64, 16, 16), (192, 64, 5, 5),
         lambda x, w: F.conv2d(x, w, padding=2), lambda x, w: tf.conv2d(x, w, padding=2)),
        ('conv3 192->384 3x3 p1 @8', (n, 192, 8, 8), (384, 192, 3, 3),
         lambda x, w: F.conv2d(x, w, padding=1), lambda x, w: tf.conv2d(x, w, padding=1)),
        ('max_pool2d 3/2 64ch @32', (n, 64, 32, 32), None,
         lambda x, w: F.max_pool2d(x, 3, 2), lambda x, w: tf.max_pool2d(x, 3, 2)),
        ('local_response_norm 5 64ch @32', (n, 64, 32, 32), None,
         lambda x, w: F.local_response_norm(x, 5, 1e-4, 0.75, 2.0),
         lambda x, w: tf.local_response_norm(x, 5, 5e-4, 0.75, 2.0)),
    ]


def median_ms(step, repeat):
    step()  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        step()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def minidl_step(fn, x_shape, w_shape, rng):
    x = minidl.Tensor(rng.standard_normal(x_shape, dtype=np.float32), requires_grad=True)
    w = minidl.Tensor(rng.standard_normal(w_shape, dtype=np.float32) * 0.05,
                      requires_grad=True) if w_shape else None
    g = minidl.Tensor(rng.standard_normal(fn(x, w).shape, dtype=np.float32))

    def step():
        x.grad = None
        fn(x, w).backward(g)
    return step


def torch_step(fn, x_shape, w_shape, rng):
    x = torch.tensor(rng.standard_normal(x_shape, dtype=np.float32), requires_grad=True)
    w = torch.tensor(rng.standard_normal(w_shape, dtype=np.float32) * 0.05,
                     requires_grad=True) if w_shape else None
    g = torch.tensor(rng.standard_normal(tuple(fn(x, w).shape), dtype=np.float32))

    def step():
        x.grad = None
        fn(x, w).backward(g)
    return step


def cpu_name():
    try:
        with open('/proc/cpuinfo') as f:
            return next(l.split(':', 1)[1].strip() for l in f if l.startswith('model name'))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def header():
    versions = (f"numpy {np.__version__}, minidl {minidl.__version__} "
                f"({minidl.cpu.describe()})")
    if torch:
        versions += f", torch {torch.__version__} ({torch.get_num_threads()} threads)"
    return (f"# {datetime.date.today()} | {cpu_name()} | "
            f"{os.cpu_count()} cores | Python {platform.python_version()} | {versions}")


def parse_args(doc, batch):
    """--batch, --repeat and --json, the options every ops-level benchmark takes."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument('--batch', type=int, default=batch)
    parser.add_argument('--repeat', type=int, default=5)
    parser.add_argument('--json', help='also write the results to this file')
    return parser.parse_args()


def save_json(path, results):
    """Write ``results`` to ``path`` atomically (a temporary file, then a rename)."""
    with open(path + '.tmp', 'w') as f:
        json.dump(results, f, indent=1)
    os.replace(path + '.tmp', path)


def main():
    args = parse_args(__doc__, 128)
    rng = np.random.default_rng(0)
    rows = []
    for name, x_shape, w_shape, ours, theirs in cases(args.batch):
        row = {'op': name, 'minidl_ms': median_ms(minidl_step(ours, x_shape, w_shape, rng),
                                                  args.repeat)}
        if torch:
            row['torch_ms'] = median_ms(torch_step(theirs, x_shape, w_shape, rng), args.repeat)
            row['ratio'] = row['minidl_ms'] / row['torch_ms']
        rows.append(row)
        print(f"  measured {name}", file=sys.stderr)
    print(header())
    print(f"# forward+backward, float32, batch {args.batch}, median of {args.repeat}")
    print(f"{'op':34s} {'minidl ms':>10s} {'torch ms':>10s} {'ratio':>7s}")
    for r in rows:
        print(f"{r['op']:34s} {r['minidl_ms']:10.1f} {r.get('torch_ms', float('nan')):10.1f} "
              f"{r.get('ratio', float('nan')):7.2f}")
    if args.json:
        save_json(args.json, {'header': header(), 'batch': args.batch, 'rows': rows})


if __name__ == '__main__':
    main()
