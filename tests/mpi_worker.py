"""Run by tests/test_distributed.py under ``mpiexec -n 2``: data-parallel steps on 2 ranks
against one process on the whole batch (computed on rank 0 too). Prints 'ok <mode>'."""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
import minidl  # noqa: E402
import minidl.distributed as dist  # noqa: E402
import minidl.functional as F  # noqa: E402
import minidl.nn as nn  # noqa: E402
import numpy as np  # noqa: E402
from minidl.nn.syncbatchnorm import SyncBatchNorm  # noqa: E402

BATCH, STEPS = 8, 3


def model(batch_norm):
    minidl.manual_seed(0)
    layers = [nn.Conv2d(3, 4, 3, padding=1)]
    layers += [nn.BatchNorm2d(4)] if batch_norm else []
    layers += [nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 4 * 4, 5)]
    return nn.Sequential(*layers).double()


def train(net, x, t, distributed):
    opt = minidl.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    for step in range(STEPS):
        xs, ts = x[step], t[step]
        if distributed:
            mine = dist.shard(np.arange(BATCH))
            xs, ts = xs[mine], ts[mine]
        opt.zero_grad()
        F.cross_entropy(net(minidl.tensor(xs)), ts).backward()
        if distributed:
            dist.average_gradients(net.parameters(), bucket_bytes=512)  # several buckets
        opt.step()
    return [p.numpy() for p in net.parameters()] + [np.asarray(b) for b in net.buffers()]


def main(mode):
    dist.init()
    assert dist.world_size() == 2, dist.world_size()
    rng = np.random.default_rng(1)
    x = rng.standard_normal((STEPS, BATCH, 3, 8, 8))
    t = rng.integers(0, 5, (STEPS, BATCH))
    if mode in ('die', 'hang'):
        if dist.rank() == 1:
            os.kill(os.getpid(), 9) if mode == 'die' else time.sleep(600)
        net = model(False)
        F.cross_entropy(net(minidl.tensor(x[0])), t[0]).backward()
        dist.average_gradients(net.parameters())
        print('survived', flush=True)
        return
    batch_norm = mode == 'syncbn'
    net = model(batch_norm)
    if batch_norm:
        net = SyncBatchNorm.convert_sync_batchnorm(net)
    if dist.rank() == 1:  # rank 0's weights must win the broadcast
        for p in net.parameters():
            p.data[...] = 7.0
    dist.broadcast_parameters(net)
    ours = train(net, x, t, distributed=True)
    theirs = train(model(batch_norm), x, t, distributed=False)  # one process, whole batch
    for a, b in zip(ours, theirs):
        err = np.abs(a - b).max() / np.abs(b).max()
        assert err < 1e-12, f"rank {dist.rank()}: relative difference {err:.3g}"
    print(f"ok {mode} rank {dist.rank()}", flush=True)


if __name__ == '__main__':
    main(sys.argv[1])
