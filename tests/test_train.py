"""The Trainer: learning, history and checkpoints, exact resume (also inside an epoch),
Ctrl-C, and stopping on a non-finite loss."""
import json
import os
import signal

import numpy as np
import pytest

import minidl
import minidl.nn as nn
from minidl.data.loader import DataLoader
from minidl.train import CHECKPOINT, Trainer, TrainingDiverged, topk_correct


class Bright:
    """Tiny learnable data set: class k images have brightness around 60 k (+ noise)."""

    def __init__(self, n, seed):
        rng = np.random.default_rng(seed)
        self.labels = rng.integers(0, 3, size=n).astype(np.int64)
        base = 40 + 70 * self.labels[:, None, None, None]
        self.images = np.clip(base + rng.normal(0, 25, (n, 1, 8, 8)), 0, 255).astype(np.uint8)
        self.classes = ('dark', 'mid', 'bright')

    def __len__(self):
        return len(self.labels)


def make_trainer(out_dir, epochs=3, cls=Trainer, lr=0.05):
    minidl.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Dropout(0.3), nn.Linear(4 * 4 * 4, 3))
    opt = minidl.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    sched = minidl.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    train = DataLoader(Bright(96, 0), 16, shuffle=True, seed=0)
    test = DataLoader(Bright(48, 1), 16)
    return cls(model, opt, train, test, sched, epochs, out_dir, log=lambda s: None,
               progress=False)


def weights(trainer):
    return {k: v.copy() for k, v in trainer.model.state_dict().items()}


def test_training_learns_and_writes_history_and_checkpoints(tmp_path):
    trainer = make_trainer(tmp_path)
    history = trainer.fit()
    assert [r['epoch'] for r in history] == [1, 2, 3]
    assert history[-1]['val_acc'] > 0.9 and history[-1]['train_loss'] < history[0]['train_loss']
    assert {'train_loss', 'train_acc', 'val_loss', 'val_acc', 'val_top5', 'lr',
            'time'} <= set(history[0])
    assert json.loads((tmp_path / 'history.json').read_text()) == history
    state = minidl.load(tmp_path / CHECKPOINT)
    assert state['epoch'] == 3 and state['step'] == 0
    assert (tmp_path / 'best.npz').exists()


def test_resume_after_an_epoch_equals_an_uninterrupted_run(tmp_path):
    straight = make_trainer(tmp_path / 'a')
    straight.fit()
    first = make_trainer(tmp_path / 'b', epochs=3)
    first.epochs = 1
    first.fit()
    second = make_trainer(tmp_path / 'b')  # a fresh process would build everything anew
    history = second.fit(resume=True)
    assert history == straight.history or _same_history(history, straight.history)
    for k, v in weights(straight).items():
        np.testing.assert_array_equal(weights(second)[k], v)


def _same_history(a, b):
    strip = lambda h: [{k: v for k, v in r.items() if k != 'time'} for r in h]  # noqa: E731
    return strip(a) == strip(b)


class StopAfter(Trainer):
    """Behaves as if Ctrl-C came during step ``stop_at`` of epoch ``stop_epoch``."""
    stop_epoch, stop_at = 1, 3

    def train_step(self, x, y, epoch, step):
        result = super().train_step(x, y, epoch, step)
        if (epoch, step) == (self.stop_epoch, self.stop_at):
            self.stop_requested = True
        return result


def test_interrupt_inside_an_epoch_then_resume_equals_an_uninterrupted_run(tmp_path):
    straight = make_trainer(tmp_path / 'a')
    straight.fit()
    stopped = make_trainer(tmp_path / 'b', cls=StopAfter)
    stopped.fit()
    state = minidl.load(tmp_path / 'b' / CHECKPOINT)
    assert (state['epoch'], state['step']) == (1, 4) and len(state['history']) == 1
    resumed = make_trainer(tmp_path / 'b')
    history = resumed.fit(resume=True)
    assert _same_history(history, straight.history)
    for k, v in weights(straight).items():
        np.testing.assert_array_equal(weights(resumed)[k], v)


def test_sigint_saves_a_checkpoint_and_returns(tmp_path):
    class CtrlC(Trainer):
        def train_step(self, x, y, epoch, step):
            if (epoch, step) == (0, 2):
                os.kill(os.getpid(), signal.SIGINT)
            return super().train_step(x, y, epoch, step)

    trainer = make_trainer(tmp_path, cls=CtrlC)
    trainer.fit()
    assert trainer.stop_requested
    assert minidl.load(tmp_path / CHECKPOINT)['step'] == 3
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_non_finite_loss_stops_with_epoch_and_step_and_keeps_the_checkpoint(tmp_path):
    class Explode(Trainer):
        def train_step(self, x, y, epoch, step):
            if (epoch, step) == (1, 2):
                x = x * float('nan')
            return super().train_step(x, y, epoch, step)

    trainer = make_trainer(tmp_path, cls=Explode)
    with pytest.raises(TrainingDiverged, match=r"loss is nan at epoch 2, step 3"):
        trainer.fit()
    state = minidl.load(tmp_path / CHECKPOINT)
    assert state['epoch'] == 1  # the good checkpoint from the end of epoch 1
    assert all(np.isfinite(v).all() for v in state['model'].values())


def test_weights_made_non_finite_by_an_epochs_last_step_are_never_saved(tmp_path):
    saved = {}

    class BlowUpAtTheEnd(Trainer):  # the last step of epoch 2 turns the weights into NaN
        def train_step(self, x, y, epoch, step):
            if (epoch, step) == (1, 0):
                saved.update({n: (tmp_path / n).read_bytes() for n in os.listdir(tmp_path)})
            self.optimizer.param_groups[0]['lr'] = float('inf') if (epoch, step) == (1, 5) \
                else 0.05
            return super().train_step(x, y, epoch, step)

    trainer = make_trainer(tmp_path, cls=BlowUpAtTheEnd)
    assert len(trainer.train_loader) == 6
    with pytest.raises(TrainingDiverged, match=r"weights are not finite after epoch 2, step 6"
                                               r".*nothing from it was saved"):
        trainer.fit()
    assert {n: (tmp_path / n).read_bytes() for n in os.listdir(tmp_path)} == saved
    assert len(trainer.history) == 1


def test_a_non_finite_test_loss_stops_the_run_before_saving(tmp_path):
    class HugeSteps(Trainer):  # finite weights so large that the test loss overflows
        def _end_epoch(self, epoch, train):
            if epoch == 1:
                for p in self.model.parameters():
                    p.data *= 1e30
            return super()._end_epoch(epoch, train)

    trainer = make_trainer(tmp_path, cls=HugeSteps)
    with pytest.raises(TrainingDiverged, match=r"test loss is (nan|inf) after epoch 2"), \
            np.errstate(over='ignore', invalid='ignore'):
        trainer.fit()
    assert minidl.load(tmp_path / CHECKPOINT)['epoch'] == 1


def test_fit_deletes_leftover_temporaries_of_atomic_write_and_nothing_else(tmp_path):
    leftovers = ['.checkpoint.npz.0123456789ab.tmp', '.history.json.a1b2c3d4e5f6.tmp']
    others = ['notes.txt', '.checkpoint.npz.tmp', '.x.0123456789ABC.tmp', 'a.0123456789ab.tmp']
    for name in leftovers + others:
        (tmp_path / name).write_text('left behind')
    trainer = make_trainer(tmp_path, epochs=1)
    trainer.fit()
    names = set(os.listdir(tmp_path))
    assert not names & set(leftovers) and set(others) <= names


def test_resume_without_a_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="resume: no checkpoint"):
        make_trainer(tmp_path).fit(resume=True)


def test_topk_correct():
    logits = np.array([[0.1, 0.5, 0.4], [0.9, 0.05, 0.05], [0.2, 0.3, 0.5]])
    labels = np.array([2, 0, 0])
    assert topk_correct(logits, labels, 1) == 1
    assert topk_correct(logits, labels, 2) == 2
    assert topk_correct(logits, labels, 5) == 3
