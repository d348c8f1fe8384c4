"""Learning-rate schedules, stepped once per epoch (names and semantics of torch.optim).

    scheduler = StepLR(optimizer, step_size=30, gamma=0.1)
    for epoch in range(epochs):
        train_one_epoch(...)        # optimizer.step() per batch
        scheduler.step()            # ReduceLROnPlateau: scheduler.step(val_metric)

Constructing a scheduler sets each group's ``'initial_lr'`` to its ``'lr'`` unless an
earlier scheduler did; those are the ``base_lrs``. It then applies epoch 0. The epoch-based
schedules are closed forms ``lr_at(base_lr, epoch)``, so composing them is calling one from
another (``LinearWarmup(..., after=CosineAnnealingLR(...))``) and resuming is setting the
epoch: ``load_state_dict`` also writes the restored learning rates into the optimizer.
"""
import bisect
import math

from ..utils import ArgumentTypeError, check_int, check_number
from .optimizer import Optimizer, _plain


class LRScheduler:
    """Base class: after ``step()`` number e, every group's lr is ``lr_at(base_lr, e)``."""
    _hyper = ()  # constructor arguments kept in state_dict

    def __init__(self, optimizer):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__}: {type(optimizer).__name__} is not an "
                            f"Optimizer")
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            group.setdefault('initial_lr', group['lr'])
        self.base_lrs = [group['initial_lr'] for group in optimizer.param_groups]
        self.last_epoch = -1
        self.step()

    def lr_at(self, base_lr, epoch):
        """The learning rate at ``epoch`` (0, 1, ...) of a group whose base lr is ``base_lr``."""
        raise NotImplementedError

    def get_lr(self):
        return [self.lr_at(base_lr, self.last_epoch) for base_lr in self.base_lrs]

    def get_last_lr(self):
        """The learning rates set by the last ``step()``, one per parameter group."""
        return list(self._last_lr)

    def step(self):
        """Advance one epoch and set the optimizer's learning rates."""
        self._goto(self.last_epoch + 1)

    def _goto(self, epoch):
        self.last_epoch = epoch
        self._last_lr = self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, self._last_lr):
            group['lr'] = lr

    def state_dict(self):
        """The epoch, base lrs and hyper-parameters, as plain numbers and lists."""
        state = {name: _plain(getattr(self, name)) for name in self._hyper}
        state.update(last_epoch=self.last_epoch, base_lrs=list(self.base_lrs))
        return state

    def load_state_dict(self, state_dict):
        """Restore ``state_dict()`` output and set the optimizer's lrs to that epoch's.
        Every value is checked as the constructor checks it before any is set."""
        self._restore(*self._validated(state_dict))

    def _validated(self, state_dict):
        where = f"{type(self).__name__}.load_state_dict"
        state = self._checked(state_dict, self._hyper + ('last_epoch', 'base_lrs'))
        hyper = self._hyperparameters(where, **{name: state[name] for name in self._hyper})
        epoch = check_int(where, 'last_epoch', state['last_epoch'], 0)
        base_lrs = [check_number(where, 'each base lr', lr, 0) for lr in state['base_lrs']]
        return hyper, epoch, base_lrs

    def _restore(self, hyper, epoch, base_lrs):
        vars(self).update(hyper)
        self.base_lrs = base_lrs
        for group, base_lr in zip(self.optimizer.param_groups, self.base_lrs):
            group['initial_lr'] = base_lr
        self._goto(epoch)

    def _checked(self, state_dict, keys):
        where = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state_dict, dict):
            raise ValueError(f"{where}: expected a dict, got {type(state_dict).__name__}")
        missing = [k for k in keys if k not in state_dict]
        if missing:
            raise ValueError(f"{where}: the state dict lacks {missing}")
        state = {k: _plain(state_dict[k]) for k in keys}
        lrs = 'base_lrs' if 'base_lrs' in state else '_last_lr'
        if not isinstance(state[lrs], list):
            raise ArgumentTypeError(f"{where}: {lrs} must be a list of numbers, got "
                                    f"{state[lrs]!r}")
        if len(state[lrs]) != len(self.optimizer.param_groups):
            raise ValueError(f"{where}: the state dict is for {len(state[lrs])} parameter "
                             f"groups, the optimizer has {len(self.optimizer.param_groups)}")
        return state


class StepLR(LRScheduler):
    """``lr = base_lr * gamma ** (epoch // step_size)``: decay by gamma every step_size epochs."""
    _hyper = ('step_size', 'gamma')

    def __init__(self, optimizer, step_size, gamma=0.1):
        vars(self).update(self._hyperparameters('StepLR', step_size, gamma))
        super().__init__(optimizer)

    @staticmethod
    def _hyperparameters(op, step_size, gamma):
        return dict(step_size=check_int(op, 'step_size', step_size, 1),
                    gamma=check_number(op, 'gamma', gamma))

    def lr_at(self, base_lr, epoch):
        return base_lr * self.gamma ** (epoch // self.step_size)


class MultiStepLR(LRScheduler):
    """``lr = base_lr * gamma ** (number of milestones <= epoch)`` (a repeated milestone counts
    once per repetition)."""
    _hyper = ('milestones', 'gamma')

    def __init__(self, optimizer, milestones, gamma=0.1):
        vars(self).update(self._hyperparameters('MultiStepLR', milestones, gamma))
        super().__init__(optimizer)

    @staticmethod
    def _hyperparameters(op, milestones, gamma):
        if isinstance(milestones, (str, bytes)) or not hasattr(milestones, '__iter__'):
            raise ArgumentTypeError(f"{op}: milestones must be a list of epochs (ints >= 0), "
                                    f"got {milestones!r}")
        return dict(milestones=sorted(check_int(op, 'each milestone', m, 0) for m in milestones),
                    gamma=check_number(op, 'gamma', gamma))

    def lr_at(self, base_lr, epoch):
        return base_lr * self.gamma ** bisect.bisect_right(self.milestones, epoch)


class CosineAnnealingLR(LRScheduler):
    """``lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2``
    (SGDR without restarts; past T_max it rises again, as PyTorch's does)."""
    _hyper = ('T_max', 'eta_min')

    def __init__(self, optimizer, T_max, eta_min=0):
        vars(self).update(self._hyperparameters('CosineAnnealingLR', T_max, eta_min))
        super().__init__(optimizer)

    @staticmethod
    def _hyperparameters(op, T_max, eta_min):
        return dict(T_max=check_int(op, 'T_max', T_max, 1),
                    eta_min=check_number(op, 'eta_min', eta_min, 0))

    def lr_at(self, base_lr, epoch):
        return self.eta_min + (base_lr - self.eta_min) * (
            1 + math.cos(math.pi * epoch / self.T_max)) / 2


class LinearWarmup(LRScheduler):
    """Linear warm-up, then an optional schedule ``after`` whose epochs count from its end::

        lr = base_lr * (start_factor + (1 - start_factor) * epoch / warmup_epochs)
                                                     for epoch < warmup_epochs
        lr = after.lr_at(base_lr, epoch - warmup_epochs)  (base_lr without ``after``)
                                                     for epoch >= warmup_epochs

    ``after`` is one of the closed-form schedulers, constructed on the same optimizer before
    this one; step only the LinearWarmup, which keeps ``after.last_epoch`` in step.
    """
    _hyper = ('warmup_epochs', 'start_factor')

    def __init__(self, optimizer, warmup_epochs, start_factor=0.1, after=None):
        hyper = self._hyperparameters('LinearWarmup', warmup_epochs, start_factor)
        if after is not None and not isinstance(after, LRScheduler):
            raise TypeError(f"LinearWarmup: after must be an epoch-based scheduler (StepLR, "
                            f"MultiStepLR, CosineAnnealingLR, LinearWarmup), got "
                            f"{type(after).__name__}")
        if after is not None and after.optimizer is not optimizer:
            raise ValueError("LinearWarmup: after must be constructed on the same optimizer")
        vars(self).update(hyper, after=after)
        super().__init__(optimizer)

    @staticmethod
    def _hyperparameters(op, warmup_epochs, start_factor):
        return dict(warmup_epochs=check_int(op, 'warmup_epochs', warmup_epochs, 0),
                    start_factor=check_number(op, 'start_factor', start_factor, 0, 1,
                                              low_open=True))

    def lr_at(self, base_lr, epoch):
        if epoch < self.warmup_epochs:
            return base_lr * (self.start_factor
                              + (1 - self.start_factor) * epoch / self.warmup_epochs)
        if self.after is None:
            return base_lr
        return self.after.lr_at(base_lr, epoch - self.warmup_epochs)

    def _goto(self, epoch):
        if self.after is not None and epoch >= self.warmup_epochs:
            self.after._goto(epoch - self.warmup_epochs)
        super()._goto(epoch)

    def state_dict(self):
        state = super().state_dict()
        state['after'] = None if self.after is None else self.after.state_dict()
        return state

    def load_state_dict(self, state_dict):
        saved_after = state_dict.get('after') if isinstance(state_dict, dict) else None
        if (saved_after is None) != (self.after is None):
            raise ValueError("LinearWarmup.load_state_dict: the state dict and this scheduler "
                             "differ in having an 'after' scheduler")
        mine = self._validated(state_dict)
        if self.after is not None:
            self.after.load_state_dict(saved_after)
        self._restore(*mine)


class ReduceLROnPlateau:
    """Divide the lr by 1/factor when a metric has stopped improving (PyTorch's semantics).

    ``step(metric)`` once per epoch. With ``mode='min'`` (a loss) the metric improves when
    ``metric < best * (1 - threshold)`` ('rel') or ``metric < best - threshold`` ('abs');
    with ``mode='max'`` (an accuracy) when ``metric > best * (1 + threshold)`` or
    ``metric > best + threshold``. After more than ``patience`` epochs in a row without
    improvement, every group's lr becomes ``max(lr * factor, min_lr)`` (unless that changes
    it by no more than ``eps``), and the next ``cooldown`` epochs count no bad epochs.
    """
    _hyper = ('mode', 'factor', 'patience', 'threshold', 'threshold_mode', 'cooldown',
              'min_lrs', 'eps', 'last_epoch', 'best', 'num_bad_epochs', 'cooldown_counter',
              '_last_lr')

    def __init__(self, optimizer, mode='min', factor=0.1, patience=10, threshold=1e-4,
                 threshold_mode='rel', cooldown=0, min_lr=0, eps=1e-8):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"ReduceLROnPlateau: {type(optimizer).__name__} is not an Optimizer")
        self.optimizer = optimizer
        vars(self).update(self._hyperparameters(
            'ReduceLROnPlateau', len(optimizer.param_groups), mode, factor, patience,
            threshold, threshold_mode, cooldown, min_lr, eps))
        self.last_epoch = 0
        self.best = math.inf if mode == 'min' else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        self._last_lr = [group['lr'] for group in optimizer.param_groups]

    @staticmethod
    def _hyperparameters(op, n, mode, factor, patience, threshold, threshold_mode, cooldown,
                         min_lr, eps):
        if mode not in ('min', 'max'):
            raise ValueError(f"{op}: mode must be 'min' or 'max', got {mode!r}")
        if threshold_mode not in ('rel', 'abs'):
            raise ValueError(f"{op}: threshold_mode must be 'rel' or 'abs', got "
                             f"{threshold_mode!r}")
        if isinstance(min_lr, (list, tuple)) and len(min_lr) != n:
            raise ValueError(f"{op}: expected {n} min_lrs, got {len(min_lr)}")
        min_lrs = list(min_lr) if isinstance(min_lr, (list, tuple)) else [min_lr] * n
        return dict(mode=mode, factor=check_number(op, 'factor', factor, 0, 1, high_open=True),
                    patience=check_int(op, 'patience', patience, 0),
                    threshold=check_number(op, 'threshold', threshold, 0),
                    threshold_mode=threshold_mode,
                    cooldown=check_int(op, 'cooldown', cooldown, 0),
                    min_lrs=[check_number(op, 'min_lr', value, 0) for value in min_lrs],
                    eps=check_number(op, 'eps', eps, 0))

    def step(self, metric):
        """Record this epoch's ``metric`` and reduce the lrs if it has plateaued."""
        size = metric.numel() if hasattr(metric, 'numel') else getattr(metric, 'size', 1)
        if size != 1:
            raise ValueError(f"ReduceLROnPlateau.step: metric must be one number, got "
                             f"shape {tuple(metric.shape)}")
        current = metric.item() if hasattr(metric, 'item') else metric
        current = check_number('ReduceLROnPlateau.step', 'metric', current)
        self.last_epoch += 1
        if self._is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            for group, min_lr in zip(self.optimizer.param_groups, self.min_lrs):
                old_lr = float(group['lr'])
                new_lr = max(old_lr * self.factor, min_lr)
                if old_lr - new_lr > self.eps:
                    group['lr'] = new_lr
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = [group['lr'] for group in self.optimizer.param_groups]

    def _is_better(self, a, best):
        if self.mode == 'min':
            return a < (best * (1 - self.threshold) if self.threshold_mode == 'rel'
                        else best - self.threshold)
        return a > (best * (self.threshold + 1) if self.threshold_mode == 'rel'
                    else best + self.threshold)

    @property
    def in_cooldown(self):
        return self.cooldown_counter > 0

    def get_last_lr(self):
        return list(self._last_lr)

    def state_dict(self):
        return {name: _plain(getattr(self, name)) for name in self._hyper}

    def load_state_dict(self, state_dict):
        """Restore ``state_dict()`` output, including the learning rates it recorded."""
        where = 'ReduceLROnPlateau.load_state_dict'
        state = LRScheduler._checked(self, state_dict, self._hyper)
        state.update(self._hyperparameters(
            where, len(self.optimizer.param_groups), *(state[name] for name in (
                'mode', 'factor', 'patience', 'threshold', 'threshold_mode', 'cooldown',
                'min_lrs', 'eps'))))
        for name in ('last_epoch', 'num_bad_epochs', 'cooldown_counter'):
            state[name] = check_int(where, name, state[name], 0)
        state['best'] = check_number(where, 'best', state['best'])
        state['_last_lr'] = [check_number(where, 'each lr', lr, 0) for lr in state['_last_lr']]
        vars(self).update(state)
        for group, lr in zip(self.optimizer.param_groups, self._last_lr):
            group['lr'] = lr
