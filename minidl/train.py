"""The training loop: epochs of train + evaluate, checkpoints, exact resume, history.

    trainer = Trainer(model, optimizer, train_loader, val_loader, scheduler, epochs=30,
                      out_dir='runs/x')
    history = trainer.fit()              # or fit(resume=True) to continue from out_dir

After every epoch ``out_dir/checkpoint.npz`` holds everything needed to continue exactly:
model, optimizer and scheduler states, the CPU random state (dropout masks), the epoch and
the history. Ctrl-C finishes the current step, saves a checkpoint *inside* the epoch
(with the number of steps done) and returns; ``fit(resume=True)`` replays the data order
of that epoch (it is a function of seed and epoch) and continues with the next step, so
an interrupted CPU run ends with the same numbers as an uninterrupted one.
``callbacks``: objects with any of the methods ``on_fit_start(trainer, resumed)``,
``on_epoch_start(trainer, epoch)``, ``on_step_end(trainer, epoch, step)``,
``on_epoch_end(trainer, epoch)`` (after the epoch's last step, before evaluation) and
``state_dict()`` / ``load_state_dict(state)`` (saved in the checkpoint): how a recipe
(``minidl.recipes``) adds per-step learning rates, weight averaging or frozen layers
without its own loop.
A non-finite loss stops training before it can reach the weights (``TrainingDiverged``);
so do weights or a test loss that an epoch's last step made NaN or infinite, before
anything from that epoch is saved. ``fit`` first deletes the temporary files that a killed
run left in ``out_dir`` (``minidl.files.remove_stale_temporaries``).

Under ``mpiexec`` (``minidl.distributed``), every rank runs this loop on its shard of each
batch: the gradients are averaged after backward, each step's "stop" and "diverged" flags
are agreed on by all ranks (so a Ctrl-C on any rank stops all of them after the same
step), the metrics are summed over the ranks, and rank 0 alone logs and writes files.
"""
import contextlib
import json
import math
import os
import signal
import sys
import threading
import time

import numpy as np

from . import backend, random
from . import distributed as dist
from .files import atomic_write, remove_stale_temporaries
from .functional import softmax_cross_entropy
from .serialization import load, save
from .tensor import no_grad

CHECKPOINT, BEST, HISTORY = 'checkpoint.npz', 'best.npz', 'history.json'


class TrainingDiverged(RuntimeError):
    """The loss (or, after an update, a weight) became NaN or infinite."""


NOTHING_SAVED = ("training stopped and nothing from it was saved (try a lower learning rate); "
                 "the last good checkpoint is kept")


def topk_correct(logits, labels, k):
    """Number of rows whose label is among the k largest logits (arrays on any device)."""
    top = (-logits).argsort(axis=1)[:, :k]
    return int((top == labels[:, None]).any(axis=1).sum())


TTA_LEVELS = (0, 1, 2)


def tta_logits(model, x, level=2):
    """The logits of ``model`` for a batch x (N, C, H, W) with test-time augmentation
    (airbench94's): level 0: ``model(x)``; level 1: the mean of the logits of x and of its
    mirror image; level 2: half the level-1 logits of x plus half the mean of the level-1
    logits of x translated by one pixel up-left and by one pixel down-right (the image
    padded by 1 with reflection, then cropped at (0, 0) and (2, 2)). Six views at level 2."""
    if level not in TTA_LEVELS:
        raise ValueError(f"tta_logits: level must be one of {TTA_LEVELS}, got {level!r}")
    if level == 0:
        return model(x)

    def mirrored(v):
        return (model(v) + model(v[..., ::-1])) * 0.5
    logits = mirrored(x)
    if level == 1:
        return logits
    from .functional import pad
    h, w = x.shape[-2:]
    padded = pad(x, (1, 1, 1, 1), mode='reflect')
    shifted = (mirrored(padded[..., :h, :w]) + mirrored(padded[..., 2:, 2:])) * 0.5
    return (logits + shifted) * 0.5


def predict(model, loader):
    """Softmax probabilities (N, C) and labels (N,) over ``loader``, as NumPy arrays."""
    from .functional import softmax
    model.eval()
    probs, labels = [], []
    with no_grad():
        for x, y in loader:
            probs.append(softmax(model(x), axis=1).numpy())
            labels.append(y.numpy())
    return np.concatenate(probs), np.concatenate(labels)


def write_json(obj, path):
    """Write JSON atomically (temp file + rename)."""
    with atomic_write(path, 'write_json') as f:
        f.write(json.dumps(obj, indent=1).encode())


class Progress:
    """A one-line progress bar on stderr: steps, running loss and accuracy, images/s."""

    def __init__(self, total, label, enabled=True, stream=None):
        stream = stream or sys.stderr
        enabled = enabled and stream.isatty()  # a bar of carriage returns is no use in a log
        self.total, self.label, self.enabled, self.stream = total, label, enabled, stream
        self.start = self.last = time.perf_counter()

    def update(self, step, images, loss, acc, force=False):
        now = time.perf_counter()
        if not self.enabled or (now - self.last < 0.5 and not force):
            return
        self.last = now
        done = int(20 * step / max(self.total, 1))
        rate = images / max(now - self.start, 1e-9)
        self.stream.write(f"\r{self.label} [{'=' * done}{' ' * (20 - done)}] {step}/{self.total}"
                          f" loss {loss:.4f} acc {acc:.1%} {rate:,.0f} img/s ")
        self.stream.flush()

    def close(self):
        if self.enabled:
            self.stream.write('\n')
            self.stream.flush()


class Trainer:
    """Train ``model`` with ``optimizer`` on ``train_loader``; evaluate on ``val_loader``."""

    def __init__(self, model, optimizer, train_loader, val_loader=None, scheduler=None,
                 epochs=1, out_dir=None, label_smoothing=0.0, config=None, log=print,
                 progress=True, callbacks=(), eval_every=1):
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.eval_every = eval_every  # test after every N-th epoch and the last (0: last only)
        self.train_loader, self.val_loader = train_loader, val_loader
        self.epochs, self.out_dir, self.label_smoothing = epochs, out_dir, label_smoothing
        self.world, self.main = dist.world_size(), dist.is_main()
        self.config, self.progress = config or {}, progress and self.main
        self.log = log if self.main else (lambda *args, **kwargs: None)
        self.history, self.stop_requested = [], False
        self.callbacks = list(callbacks)
        self._stop = False  # the stop agreed on by every rank (Ctrl-C on any of them)
        if out_dir:
            os.makedirs(out_dir, exist_ok=True)

    # -- the loop
    def fit(self, resume=False):
        """Run the remaining epochs; returns the history (a list of per-epoch dicts)."""
        if self.out_dir and self.main:
            removed = remove_stale_temporaries(self.out_dir)
            if removed:
                self.log(f"deleted {len(removed)} temporary file(s) left by a killed run in "
                         f"{self.out_dir}: {', '.join(removed)}")
        epoch, step, partial = self._resume() if resume else (0, 0, None)
        self._call('on_fit_start', resume)
        with self._sigint_requests_stop():
            while epoch < self.epochs:
                train = self.train_epoch(epoch, skip=step, partial=partial)
                if train is None:  # stopped by Ctrl-C inside the epoch
                    return self.history
                step, partial = 0, None
                self._end_epoch(epoch, train)
                epoch += 1
        return self.history

    def train_epoch(self, epoch, skip=0, partial=None):
        """One epoch; returns {'train_loss', 'train_acc', 'time'} or None when stopped."""
        self.model.train()
        self.train_loader.set_epoch(epoch)
        self._call('on_epoch_start', epoch)
        sums = dict(partial or {'loss': 0.0, 'correct': 0, 'seen': 0, 'time': 0.0})
        bar = Progress(len(self.train_loader), f"epoch {epoch + 1}/{self.epochs}", self.progress)
        start = time.perf_counter() - sums['time']
        for step, (x, y) in enumerate(self.train_loader):
            if step < skip:  # resuming inside this epoch: these batches were trained on
                continue
            loss, correct = self.train_step(x, y, epoch, step)
            self._call('on_step_end', epoch, step)
            sums['loss'] += loss * len(y)
            sums['correct'] += correct
            sums['seen'] += len(y)
            bar.update(step + 1, sums['seen'], sums['loss'] / sums['seen'],
                       sums['correct'] / sums['seen'])
            if self.stop_requested if self.world == 1 else self._stop:  # (agreed by all ranks)
                bar.close()
                sums['time'] = time.perf_counter() - start
                self._interrupted(epoch, step + 1, self._total(sums))
                return None
        bar.close()
        sums = self._total(sums)
        seen = max(sums['seen'], 1)
        return {'train_loss': sums['loss'] / seen, 'train_acc': sums['correct'] / seen,
                'time': time.perf_counter() - start}

    def train_step(self, x, y, epoch, step):
        """Forward, loss, backward, update. Returns (loss, number correct) as Python numbers;
        reading the loss is the step's one host synchronisation."""
        logits = self.model(x)
        loss = softmax_cross_entropy(logits, y, label_smoothing=self.label_smoothing)
        value = loss.item()
        diverged, self._stop = not math.isfinite(value), self.stop_requested
        if self.world > 1:  # every rank must take the same decision at the same step
            flags = dist.allreduce_(np.array([diverged, self._stop], np.float64), 'step flags')
            diverged, self._stop = bool(flags[0]), bool(flags[1])
        if diverged:
            raise TrainingDiverged(f"loss is {value} at epoch {epoch + 1}, step {step + 1}: "
                                   f"training stopped before updating the weights (try a "
                                   f"lower learning rate); the last good checkpoint is kept")
        self.optimizer.zero_grad()
        loss.backward()
        dist.average_gradients(self.model.parameters())  # (nothing to do in one process)
        self.optimizer.step()
        correct = int((logits.data.argmax(axis=1) == y.data).sum())
        return value, correct

    @property
    def stopped(self):
        """True when training stopped early on a Ctrl-C (on this or, agreed, another rank)."""
        return self.stop_requested or self._stop

    def _total(self, sums):
        """The epoch's sums over every rank (this rank's own in one process)."""
        if self.world == 1:
            return sums
        keys = ('loss', 'correct', 'seen')
        total = dist.allreduce_(np.array([sums[k] for k in keys], np.float64), 'epoch sums')
        return {**sums, **dict(zip(keys, total.tolist()))}

    def evaluate(self, loader, tta=0, keep_probs=False):
        """Loss, top-1 and top-5 accuracy over ``loader`` in eval mode; ``tta``: the level
        of test-time augmentation (``tta_logits``). ``keep_probs``: also the softmax
        probabilities and labels ('probs', 'labels', NumPy arrays, as ``predict``)."""
        from .functional import softmax
        self.model.eval()
        loss = correct1 = correct5 = seen = 0
        kept = []
        with no_grad():
            for x, y in loader:
                logits = tta_logits(self.model, x, tta)
                if keep_probs:
                    kept.append((softmax(logits, axis=1).numpy(), y.numpy()))
                loss += softmax_cross_entropy(logits, y, reduction='sum').item()
                correct1 += topk_correct(logits.data, y.data, 1)
                correct5 += topk_correct(logits.data, y.data, 5)
                seen += len(y)
        if self.world > 1:  # each rank evaluated its shard of the test set
            loss, correct1, correct5, seen = dist.allreduce_(
                np.array([loss, correct1, correct5, seen], np.float64), 'evaluation sums')
        seen = max(seen, 1)
        result = {'loss': loss / seen, 'acc': correct1 / seen, 'top5': correct5 / seen}
        if keep_probs:
            result['probs'], result['labels'] = (np.concatenate(a) for a in zip(*kept))
        return result

    # -- epoch bookkeeping
    def _stop_if_weights_diverged(self, epoch, step):
        """train_step checks each loss before its update, so the update of an epoch's last
        step is checked here, before anything is evaluated or saved: one pass over the
        parameters and buffers (running statistics) per epoch."""
        for name, array in self.model.state_dict().items():
            xp = backend.get_array_module(array)
            if array.dtype.kind in 'fc' and not bool(xp.isfinite(array).all()):
                raise TrainingDiverged(f"weights are not finite after epoch {epoch + 1}, "
                                       f"step {step} ({name}): {NOTHING_SAVED}")

    def _tests_after(self, epoch):
        """Whether the test set is evaluated after epoch (0-based): every ``eval_every``-th
        epoch and always the last."""
        last = epoch + 1 == self.epochs
        return last or (self.eval_every > 0 and (epoch + 1) % self.eval_every == 0)

    def _call(self, hook, *args):
        for callback in self.callbacks:
            if hasattr(callback, hook):
                getattr(callback, hook)(self, *args)

    def _end_epoch(self, epoch, train):
        self._call('on_epoch_end', epoch)
        self._stop_if_weights_diverged(epoch, len(self.train_loader))
        record = {'epoch': epoch + 1, **train,
                  'lr': float(self.optimizer.param_groups[0]['lr'])}
        if self.val_loader is not None and self._tests_after(epoch):
            val = self.evaluate(self.val_loader)
            if not math.isfinite(val['loss']):
                raise TrainingDiverged(f"test loss is {val['loss']} after epoch {epoch + 1}: "
                                       f"{NOTHING_SAVED}")
            record.update(val_loss=val['loss'], val_acc=val['acc'], val_top5=val['top5'])
        self.history.append(record)
        if self.scheduler is not None:
            plateau = type(self.scheduler).__name__ == 'ReduceLROnPlateau'
            self.scheduler.step(record.get('val_acc', -record['train_loss'])) if plateau \
                else self.scheduler.step()
        self.log(self._describe(record, self.world))
        if self.out_dir:
            state = self._state(epoch + 1, 0, None)
            if not self.main:
                return
            best = max(self.history, key=lambda r: r.get('val_acc', r['train_acc']))
            if best is record:
                save(state, os.path.join(self.out_dir, BEST))
            save(state, os.path.join(self.out_dir, CHECKPOINT))
            write_json(self.history, os.path.join(self.out_dir, HISTORY))

    @staticmethod
    def _describe(r, world=1):
        text = (f"epoch {r['epoch']}: train loss {r['train_loss']:.4f} acc {r['train_acc']:.2%}")
        if 'val_acc' in r:
            text += (f" | test loss {r['val_loss']:.4f} top-1 {r['val_acc']:.2%} "
                     f"top-5 {r['val_top5']:.2%}")
        ranks = f" | {world} ranks" if world > 1 else ''
        return text + f" | lr {r['lr']:.4g} | {r['time']:.1f} s{ranks}"

    def _state(self, epoch, step, partial):
        """The checkpoint; with several ranks it also holds every rank's random state
        (collected from all of them: every rank must call this)."""
        state = {'format': 'minidl-train', 'epoch': epoch, 'step': step, 'partial': partial,
                 'model': self.model.state_dict(), 'optimizer': self.optimizer.state_dict(),
                 'scheduler': self.scheduler.state_dict() if self.scheduler else None,
                 'rng': random.get_rng_state(), 'history': self.history, 'config': self.config,
                 'callbacks': [c.state_dict() if hasattr(c, 'state_dict') else None
                               for c in self.callbacks]}
        if self.world > 1:
            state['rng_ranks'] = dist.gather_object(random.get_rng_state())
        return state

    def _interrupted(self, epoch, step, sums):
        if self.out_dir:
            self._stop_if_weights_diverged(epoch, step)
            state = self._state(epoch, step, sums)
            if self.main:
                save(state, os.path.join(self.out_dir, CHECKPOINT))
            self.log(f"interrupted: checkpoint saved at epoch {epoch + 1}, step {step} in "
                     f"{self.out_dir}; continue with --resume")
        else:
            self.log(f"interrupted at epoch {epoch + 1}, step {step} (no out_dir: not saved)")

    def _resume(self):
        path = os.path.join(self.out_dir or '', CHECKPOINT)
        if not self.out_dir or not os.path.exists(path):
            raise FileNotFoundError(f"resume: no checkpoint at {path}")
        state = load(path)
        if state.get('format') != 'minidl-train':
            raise ValueError(f"resume: {path} is not a training checkpoint")
        self.model.load_state_dict(state['model'])
        self.optimizer.load_state_dict(state['optimizer'])
        if self.scheduler is not None and state['scheduler'] is not None:
            self.scheduler.load_state_dict(state['scheduler'])
        saved = state.get('callbacks') or []
        if len(saved) != len(self.callbacks):
            raise ValueError(f"resume: {path} was saved with {len(saved)} callback state(s), "
                             f"this trainer has {len(self.callbacks)} callbacks")
        for callback, callback_state in zip(self.callbacks, saved):
            if hasattr(callback, 'load_state_dict'):
                callback.load_state_dict(callback_state)
        ranks = state.get('rng_ranks')
        if self.world == 1:
            random.set_rng_state(state['rng'])
        elif ranks and len(ranks) == self.world:  # each rank continues its own stream
            random.set_rng_state(ranks[dist.rank()])
        elif self.main:  # another number of ranks: rank 0 continues, the others start anew
            random.set_rng_state(state['rng'])
        self.history = list(state['history'])
        where = f"epoch {state['epoch'] + 1}" + (f", step {state['step'] + 1}"
                                                 if state['step'] else '')
        self.log(f"resuming from {path} at {where}")
        partial = state['partial']
        if partial and not self.main:  # the saved sums are every rank's: counted once, on 0
            partial = {**partial, 'loss': 0.0, 'correct': 0, 'seen': 0}
        return state['epoch'], state['step'], partial

    @contextlib.contextmanager
    def _sigint_requests_stop(self):
        """Inside: the first Ctrl-C asks the loop to stop after the current step; a second
        one interrupts at once. (Signal handlers can only be set from the main thread.)"""
        def handle(signum, frame):
            if self.stop_requested:
                raise KeyboardInterrupt
            self.stop_requested = True
            self.log("\nCtrl-C: stopping after this step (press again to abort)")

        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, handle) if main else None
        try:
            yield
        finally:
            if main:
                signal.signal(signal.SIGINT, previous)
