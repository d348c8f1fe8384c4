"""What the fast ops buy over their readable versions: forward+backward time and the memory
kept for backward, ``minidl.functional`` against ``minidl.functional.reference``, float32,
at AlexNet-on-CIFAR layer sizes.

    python benchmarks/reference.py [--batch 32] [--repeat 5] [--json out.json]

Prints the machine, date and versions, then one row per op: median milliseconds of one
forward+backward of the reference and of the fast op (after one warm-up), their ratio, and
the bytes each keeps alive between forward and backward beyond its inputs and output
(measured with tracemalloc, which sees NumPy's allocations).
"""
import datetime
import os
import platform
import sys
import tracemalloc

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
# NumPy first, as users write it (minidl re-applies its OpenBLAS setting on import)
import numpy as np  # noqa: E402
import minidl  # noqa: E402
import minidl.functional as F  # noqa: E402
from minidl.functional import reference as R  # noqa: E402

from ops import cpu_name, median_ms, parse_args, save_json  # noqa: E402


def cases(n):
    """(name, shapes of the float inputs, fn(module, *inputs)): module is F or R."""
    target = np.arange(n) % 10
    return [
        ('conv2d 64->192 5x5 p2 @16', [(n, 64, 16, 16), (192, 64, 5, 5), (192,)],
         lambda M, x, w, b: M.conv2d(x, w, b, padding=2)),
        ('conv2d 3->64 3x3 p1 @32', [(n, 3, 32, 32), (64, 3, 3, 3), (64,)],
         lambda M, x, w, b: M.conv2d(x, w, b, padding=1)),
        ('conv2d groups 2 96->128 3x3 @8', [(n, 96, 8, 8), (128, 48, 3, 3)],
         lambda M, x, w: M.conv2d(x, w, padding=1, groups=2)),
        ('max_pool2d 3/2 64ch @32', [(n, 64, 32, 32)], lambda M, x: M.max_pool2d(x, 3, 2)),
        ('avg_pool2d 2/2 64ch @32', [(n, 64, 32, 32)], lambda M, x: M.avg_pool2d(x, 2)),
        ('local_response_norm 5 64ch @32', [(n, 64, 32, 32)],
         lambda M, x: M.local_response_norm(x, 5, 1e-4, 0.75, 2.0)),
        ('batch_norm train 64ch @32', [(n, 64, 32, 32), (64,), (64,)],
         lambda M, x, w, b: M.batch_norm(x, None, None, w, b, training=True)),
        ('softmax_cross_entropy 10 cls ls 0.1', [(n, 10)],
         lambda M, x: M.softmax_cross_entropy(x, target[:x.shape[0]], label_smoothing=0.1)),
        ('linear 4096->1024', [(n, 4096), (1024, 4096), (1024,)],
         lambda M, x, w, b: M.linear(x, w, b)),
    ]


def tensors(shapes, rng):
    return [minidl.Tensor(rng.standard_normal(s, dtype=np.float32) * (0.05 if i else 1.0),
                          requires_grad=True) for i, s in enumerate(shapes)]


def step(M, fn, xs, g):
    def run():
        for x in xs:
            x.grad = None
        fn(M, *xs).backward(g)
    return run


def kept_bytes(M, fn, xs):
    """Bytes allocated by the forward and still alive before backward, less the output."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        y = fn(M, *xs)
        kept = tracemalloc.get_traced_memory()[0] - before - y.data.nbytes
    finally:
        tracemalloc.stop()
    del y
    return max(kept, 0)


def header():
    return (f"# {datetime.date.today()} | {cpu_name()} | {os.cpu_count()} cores | Python "
            f"{platform.python_version()} | numpy {np.__version__}, minidl {minidl.__version__}"
            f" ({minidl.cpu.describe()})")


def main():
    args = parse_args(__doc__, 32)
    rng = np.random.default_rng(0)
    rows = []
    for name, shapes, fn in cases(args.batch):
        xs = tensors(shapes, rng)
        g = minidl.Tensor(rng.standard_normal(fn(F, *xs).shape, dtype=np.float32))
        row = {'op': name}
        for label, M in (('reference', R), ('fast', F)):
            row[label + '_ms'] = median_ms(step(M, fn, xs, g), args.repeat)
            row[label + '_kept_mb'] = kept_bytes(M, fn, xs) / 2 ** 20
        row['speedup'] = row['reference_ms'] / row['fast_ms']
        rows.append(row)
        print(f"  measured {name}", file=sys.stderr)
    print(header())
    print(f"# forward+backward, float32, batch {args.batch}, median of {args.repeat}; kept = "
          f"memory alive between forward and backward beyond inputs and output")
    print(f"{'op':36s} {'ref ms':>8s} {'fast ms':>8s} {'speed-up':>8s} "
          f"{'ref kept MB':>11s} {'fast kept MB':>12s}")
    for r in rows:
        print(f"{r['op']:36s} {r['reference_ms']:8.1f} {r['fast_ms']:8.1f} "
              f"{r['speedup']:7.1f}x {r['reference_kept_mb']:11.1f} {r['fast_kept_mb']:12.1f}")
    if args.json:
        save_json(args.json, {'header': header(), 'batch': args.batch, 'rows': rows})


if __name__ == '__main__':
    main()
