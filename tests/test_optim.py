"""Optimizers: SGD, Adam and AdamW update parameters exactly as torch.optim does, and their
state_dict resumes training exactly."""
import copy

import numpy as np
import pytest

import minidl
from minidl import backend
from minidl.optim import SGD, Adam, AdamW, Optimizer
from helpers import requires_torch, torch, assert_parity

SHAPES = [(3, 4), (5,), (2, 3, 2), (), (200, 401)]  # the last: several blocks, 2 threads
STEPS = 5
RTOL = 1e-12

CASES = [
    (SGD, dict(lr=0.1)),
    (SGD, dict(lr=0.1, momentum=0.9)),
    (SGD, dict(lr=0.1, momentum=0.9, nesterov=True)),
    (SGD, dict(lr=0.1, weight_decay=0.01)),
    (SGD, dict(lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.01)),
    (SGD, dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)),
    (Adam, dict()),
    (Adam, dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    (Adam, dict(lr=0.01, betas=(0.3, 0.9))),  # 1 - beta1 >= 0.5: lerp's other branch
    (AdamW, dict()),
    (AdamW, dict(lr=0.01, weight_decay=0)),
    (AdamW, dict(lr=0.01, betas=(0.85, 0.95), weight_decay=0.1)),
]
IDS = [f"{cls.__name__}-{'-'.join(f'{k}={v}' for k, v in kw.items()) or 'defaults'}"
       for cls, kw in CASES]


def make_params(dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    return [minidl.Tensor(rng.standard_normal(s).astype(dtype), requires_grad=True)
            for s in SHAPES]


def gradients(step, dtype=np.float64):
    rng = np.random.default_rng(100 + step)
    return [rng.standard_normal(s).astype(dtype) for s in SHAPES]


def run(opt, params, steps):
    for step in steps:
        opt.zero_grad()
        for p, g in zip(params, gradients(step, params[0].dtype)):
            p.grad = minidl.Tensor(backend.to_device(g, p.device))
        opt.step()


def torch_optimizer(cls, params, **kw):
    return getattr(torch.optim, cls.__name__)(params, foreach=False, **kw)


# ----------------------------------------------------------------------------- parity
@pytest.mark.parametrize('cls, kw', CASES, ids=IDS)
def test_a_transposed_gradient_gives_the_update_of_its_contiguous_copy(cls, kw):
    results = []
    for layout in (np.ascontiguousarray, lambda g: np.asfortranarray(g)):
        p = minidl.Tensor(np.random.default_rng(0).standard_normal((300, 257)),
                          requires_grad=True)
        opt = cls([p], **kw)
        for step in range(3):
            g = np.random.default_rng(step).standard_normal((300, 257))
            p.grad = minidl.Tensor(layout(g))
            opt.step()
        results.append(p.numpy())
    np.testing.assert_array_equal(*results)


@requires_torch
@pytest.mark.parametrize('cls, kw', CASES, ids=IDS)
def test_updates_match_torch(cls, kw):
    params = make_params()
    theirs = [torch.tensor(p.numpy(), requires_grad=True) for p in params]
    run(cls(params, **kw), params, range(STEPS))
    opt = torch_optimizer(cls, theirs, **kw)
    for step in range(STEPS):
        opt.zero_grad()
        for t, g in zip(theirs, gradients(step)):
            t.grad = torch.tensor(g)
        opt.step()
    for p, t in zip(params, theirs):
        assert_parity(p, t, RTOL)


@requires_torch
@pytest.mark.parametrize('cls, kw', [(SGD, dict(momentum=0.9)), (Adam, {}), (AdamW, {})],
                         ids=['SGD', 'Adam', 'AdamW'])
def test_param_groups_with_their_own_lr_match_torch(cls, kw):
    params = make_params()
    theirs = [torch.tensor(p.numpy(), requires_grad=True) for p in params]
    groups = lambda ps: [{'params': ps[:2]}, {'params': ps[2:], 'lr': 0.3}]  # noqa: E731
    opt = cls(groups(params), lr=0.01, **kw)
    assert [g['lr'] for g in opt.param_groups] == [0.01, 0.3]
    run(opt, params, range(STEPS))
    topt = torch_optimizer(cls, groups(theirs), lr=0.01, **kw)
    for step in range(STEPS):
        for t, g in zip(theirs, gradients(step)):
            t.grad = torch.tensor(g)
        topt.step()
    for p, t in zip(params, theirs):
        assert_parity(p, t, RTOL)


def test_sgd_follows_the_update_rule():
    p = minidl.Tensor(np.array([1.0, -2.0]), requires_grad=True)
    opt = SGD([p], lr=0.1, momentum=0.5, weight_decay=0.1)
    grads = [np.array([1.0, 1.0]), np.array([2.0, 0.0])]
    expected, buf = p.numpy().copy(), None
    for g in grads:
        p.grad = minidl.Tensor(g)
        opt.step()
        d = g + 0.1 * expected
        buf = d if buf is None else 0.5 * buf + d  # first buffer = gradient, no dampening
        expected = expected - 0.1 * buf
    np.testing.assert_allclose(p.numpy(), expected, rtol=1e-15)


def test_adam_first_step_moves_each_weight_by_about_lr():
    p = minidl.Tensor(np.array([1.0, -2.0, 3.0]), requires_grad=True)
    p.grad = minidl.Tensor(np.array([1e-3, -5.0, 100.0]))
    Adam([p], lr=0.01).step()  # m / sqrt(v) = sign(g) after bias correction
    np.testing.assert_allclose(p.numpy(), [0.99, -1.99, 2.99], rtol=1e-6)


# ----------------------------------------------------------------------------- mechanics
@pytest.mark.parametrize('cls, kw', CASES, ids=IDS)
def test_float32_stays_float32(cls, kw):
    params = make_params(np.float32)
    opt = cls(params, **kw)
    opt.param_groups[0]['lr'] = np.float64(opt.param_groups[0]['lr'])  # e.g. set by a schedule
    run(opt, params, range(3))
    assert all(p.dtype == np.float32 for p in params)
    assert all(v.dtype == np.float32 for s in opt.state.values() for v in s.values()
               if isinstance(v, np.ndarray))


@pytest.mark.parametrize('cls, kw', CASES, ids=IDS)
def test_updates_in_place(cls, kw):
    params = make_params()
    arrays = [p.data for p in params]
    run(cls(params, **kw), params, range(2))
    assert all(p.data is a for p, a in zip(params, arrays))


def test_zero_grad_sets_grads_to_none():
    params = make_params()
    opt = SGD(params, lr=0.1)
    for p in params:
        p.grad = minidl.Tensor(np.ones(p.shape))
    opt.zero_grad()
    assert all(p.grad is None for p in params)


def test_zero_grad_set_to_none_false_fills_zeros():
    p = minidl.Tensor(np.ones(3), requires_grad=True)
    p.grad = minidl.Tensor(np.ones(3))
    SGD([p], lr=0.1).zero_grad(set_to_none=False)
    np.testing.assert_array_equal(p.grad.numpy(), np.zeros(3))


@pytest.mark.parametrize('cls', [SGD, Adam, AdamW])
def test_params_without_grad_are_skipped(cls):
    a, b = make_params()[:2]
    before = b.numpy().copy()
    a.grad = minidl.Tensor(np.ones(a.shape))
    opt = cls([a, b], lr=0.1, weight_decay=0.1)
    opt.step()
    np.testing.assert_array_equal(b.numpy(), before)  # not even weight decay
    assert b not in opt.state or not opt.state[b]
    assert not np.array_equal(a.numpy(), make_params()[0].numpy())


def test_step_with_closure_returns_the_loss():
    p = minidl.Tensor(np.array([3.0]), requires_grad=True)
    opt = SGD([p], lr=0.25)

    def closure():
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert loss.item() == 9.0
    assert p.numpy()[0] == 3.0 - 0.25 * 6.0


def test_trains_module_parameters_from_a_generator():
    model = minidl.nn.Linear(3, 1)
    model.double()
    x = minidl.Tensor(np.random.default_rng(0).standard_normal((16, 3)))
    y = minidl.Tensor(x.numpy() @ np.array([[1.0], [-2.0], [0.5]]) + 0.3)
    opt = Adam(model.parameters(), lr=0.1)
    losses = []
    for _ in range(50):
        opt.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.01 * losses[0]


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize('make, match', [
    (lambda ps: SGD(ps, lr=-0.1), r"SGD: invalid lr -0\.1"),
    (lambda ps: SGD(ps, lr=0.1, momentum=-1), r"SGD: invalid momentum -1"),
    (lambda ps: SGD(ps, lr=0.1, weight_decay=-1e-4), r"SGD: invalid weight_decay"),
    (lambda ps: SGD(ps, lr=0.1, nesterov=True), r"Nesterov momentum requires"),
    (lambda ps: SGD(ps, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), r"Nesterov"),
    (lambda ps: minidl.optim.Optimizer([{'params': ps}], {'lr': minidl.optim.optimizer.required}),
     r"required optimization parameter lr"),
    (lambda ps: SGD([{'params': ps[:1]}, {'params': ps[1:], 'lr': -1}], lr=0.1), r"invalid lr -1"),
    (lambda ps: Adam(ps, lr=-1e-3), r"Adam: invalid lr -0\.001"),
    (lambda ps: Adam(ps, eps=-1.0), r"Adam: invalid eps -1\.0"),
    (lambda ps: Adam(ps, betas=(1.0, 0.999)), r"Adam: invalid betas \(1\.0, 0\.999\)"),
    (lambda ps: AdamW(ps, betas=(0.9, -0.1)), r"AdamW: invalid betas"),
    (lambda ps: AdamW(ps, weight_decay=-0.01), r"AdamW: invalid weight_decay -0\.01"),
    (lambda ps: SGD([], lr=0.1), r"empty parameter list"),
    (lambda ps: Adam([{'params': []}]), r"empty parameter list"),
    (lambda ps: SGD([ps[0], ps[0]], lr=0.1), r"more than once"),
    (lambda ps: SGD([{'params': ps[:2]}, {'params': ps[1:]}], lr=0.1), r"more than once"),
    (lambda ps: SGD([ps[0] * 2], lr=0.1), r"non-leaf"),
])
def test_invalid_arguments_raise_value_error(make, match):
    with pytest.raises(ValueError, match=match):
        make(make_params())


@pytest.mark.parametrize('params, match', [
    (lambda: make_params()[0], r"single Tensor"),
    (lambda: [np.zeros(3)], r"can only optimize Tensors, got ndarray"),
    (lambda: [minidl.Tensor(np.arange(3))], r"floating-point Tensors, got dtype int64"),
])
def test_invalid_params_raise_type_error(params, match):
    with pytest.raises(TypeError, match=match):
        SGD(params(), lr=0.1)


# ----------------------------------------------------------------------------- state_dict
def trained(cls, kw, steps, dtype=np.float64):
    params = make_params(dtype)
    opt = cls([{'params': params[:1]}, {'params': params[1:], 'lr': 0.02}], **kw)
    run(opt, params, steps)
    return params, opt


RESUME_CASES = [(SGD, dict(lr=0.1, momentum=0.9, nesterov=True)), (Adam, dict(weight_decay=0.1)),
                (AdamW, dict(betas=(0.8, 0.99)))]


def _walk(obj):
    yield obj
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield k
            yield from _walk(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _walk(v)


@pytest.mark.parametrize('cls, kw', RESUME_CASES, ids=lambda c: getattr(c, '__name__', ''))
def test_state_dict_has_pytorchs_layout_and_only_plain_values(cls, kw):
    params, opt = trained(cls, kw, range(2))
    sd = opt.state_dict()
    assert list(sd) == ['state', 'param_groups']
    assert [g['params'] for g in sd['param_groups']] == [[0], list(range(1, len(SHAPES)))]
    assert [g['lr'] for g in sd['param_groups']] == [opt.defaults['lr'], 0.02]
    assert sorted(sd['state']) == list(range(len(SHAPES)))
    assert set(sd['state'][2]) == set(cls._state_keys)
    for i, shape in enumerate(SHAPES):
        for name, value in sd['state'][i].items():
            if name == 'step':
                assert type(value) is int
            else:
                assert type(value) is np.ndarray and value.shape == shape, name
    allowed = (dict, list, str, int, float, bool, type(None), np.ndarray)
    assert all(isinstance(x, allowed) for x in _walk(sd))
    if cls is not SGD:
        assert sd['param_groups'][0]['betas'] == list(kw.get('betas', (0.9, 0.999)))
        assert sd['state'][0]['step'] == 2


@pytest.mark.parametrize('cls, kw', RESUME_CASES, ids=lambda c: getattr(c, '__name__', ''))
def test_resuming_from_state_dict_matches_uninterrupted_training(cls, kw):
    straight, _ = trained(cls, kw, range(STEPS))

    params, opt = trained(cls, kw, range(2))
    sd = opt.state_dict()
    saved_params = [p.numpy().copy() for p in params]
    run(opt, params, [7, 8])  # training on after the snapshot must not alter it

    resumed = [minidl.Tensor(a, requires_grad=True) for a in saved_params]
    opt2 = cls([{'params': resumed[:1]}, {'params': resumed[1:]}], lr=123.0)
    opt2.load_state_dict(copy.deepcopy(sd))
    assert [g['lr'] for g in opt2.param_groups] == [opt.defaults['lr'], 0.02]
    run(opt2, resumed, range(2, STEPS))
    for a, b in zip(straight, resumed):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_state_dict_survives_a_checkpoint_file(tmp_path):
    serialization = pytest.importorskip('minidl.serialization')
    straight, _ = trained(Adam, {}, range(STEPS))
    params, opt = trained(Adam, {}, range(3))
    serialization.save({'params': [p.data for p in params], 'optim': opt.state_dict()},
                       tmp_path / 'ckpt.npz')
    ckpt = serialization.load(tmp_path / 'ckpt.npz')
    resumed = [minidl.Tensor(a, requires_grad=True) for a in ckpt['params']]
    opt2 = Adam([{'params': resumed[:1]}, {'params': resumed[1:]}])
    opt2.load_state_dict(ckpt['optim'])
    run(opt2, resumed, range(3, STEPS))
    for a, b in zip(straight, resumed):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_loaded_state_is_cast_to_the_parameters_dtype():
    _, opt = trained(Adam, {}, range(2))
    params32 = make_params(np.float32)
    opt32 = Adam([{'params': params32[:1]}, {'params': params32[1:]}])
    opt32.load_state_dict(opt.state_dict())
    assert all(s['exp_avg'].dtype == np.float32 for s in opt32.state.values())


def _corrupt(sd, how):
    sd = copy.deepcopy(sd)
    if how == 'groups':
        sd['param_groups'].append(dict(sd['param_groups'][0], params=[9]))
    elif how == 'params':
        sd['param_groups'][1]['params'].pop()
    elif how == 'shape':
        sd['state'][3]['exp_avg'] = np.zeros((7,))
    elif how == 'missing':
        del sd['state'][1]['exp_avg_sq']
    elif how == 'index':
        sd['state'][99] = sd['state'][0]
    elif how == 'step':
        sd['state'][0]['step'] = np.zeros(3)
    elif how == 'lr':
        sd['param_groups'][0]['lr'] = -1.0
    elif how == 'not_array':
        sd['state'][2]['exp_avg'] = [0.0] * 6
    return sd


@pytest.mark.parametrize('how', ['groups', 'params', 'shape', 'missing', 'index', 'step', 'lr',
                                 'not_array'])
def test_load_state_dict_rejects_mismatches_and_changes_nothing(how):
    _, source = trained(Adam, {}, range(2))
    _, opt = trained(Adam, dict(lr=0.5), range(1))
    before = copy.deepcopy(opt.state_dict())
    with pytest.raises(ValueError, match=r"Adam.load_state_dict: "):
        opt.load_state_dict(_corrupt(source.state_dict(), how))
    after = opt.state_dict()
    assert after['param_groups'] == before['param_groups']
    for i, s in before['state'].items():
        for name, value in s.items():
            np.testing.assert_array_equal(after['state'][i][name], value)


def test_optimizer_base_class_needs_an_update_rule():
    opt = Optimizer(make_params(), dict(lr=0.1))
    opt.param_groups[0]['params'][0].grad = minidl.Tensor(np.ones((3, 4)))
    with pytest.raises(NotImplementedError):
        opt.step()


# ----------------------------------------------------------------------------- devices


@pytest.mark.gpu
@pytest.mark.skipif(not minidl.cuda.is_available(), reason='no CUDA GPU visible')
@pytest.mark.parametrize('cls, kw', RESUME_CASES, ids=lambda c: getattr(c, '__name__', ''))
def test_cpu_checkpoint_resumes_on_gpu_and_back(cls, kw):
    straight, _ = trained(cls, kw, range(STEPS))
    params, opt = trained(cls, kw, range(2))
    on_gpu = [minidl.Tensor(backend.to_device(p.data, 'cuda'), requires_grad=True)
              for p in params]
    opt_gpu = cls([{'params': on_gpu[:1]}, {'params': on_gpu[1:]}], lr=1.0)
    opt_gpu.load_state_dict(opt.state_dict())
    assert all(backend.device_of(v) == 'cuda' for s in opt_gpu.state.values()
               for v in s.values() if backend.is_array(v))
    run(opt_gpu, on_gpu, [2, 3])
    back = [minidl.Tensor(p.numpy(), requires_grad=True) for p in on_gpu]
    opt_cpu = cls([{'params': back[:1]}, {'params': back[1:]}], lr=1.0)
    opt_cpu.load_state_dict(opt_gpu.state_dict())
    run(opt_cpu, back, range(4, STEPS))
    for a, b in zip(straight, back):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12, atol=1e-14)


# -- PyTorch 2's options: SGD's default lr, maximize, amsgrad
def test_sgd_lr_defaults_to_1e_3_as_pytorch_2():
    assert SGD([minidl.tensor(np.zeros(2), requires_grad=True)]).param_groups[0]['lr'] == 1e-3


@pytest.mark.parametrize('make', [lambda ps: SGD(ps, lr=0.1, maximize=True),
                                  lambda ps: Adam(ps, lr=0.1, maximize=True),
                                  lambda ps: AdamW(ps, lr=0.1, maximize=True)])
def test_maximize_steps_up_the_gradient_as_minimizing_its_negative(make):
    g = np.array([0.5, -2.0, 3.0])
    up, down = (minidl.tensor(np.ones(3), requires_grad=True) for _ in range(2))
    for p, grad, maximize in ((up, g, True), (down, -g, False)):
        optimizer = make([p])
        optimizer.param_groups[0]['maximize'] = maximize
        p.grad = minidl.tensor(grad)
        optimizer.step()
    np.testing.assert_array_equal(up.numpy(), down.numpy())
    assert (up.numpy()[g > 0] > 1).all()


def test_amsgrad_divides_by_the_largest_second_moment_so_far():
    p = minidl.tensor(np.zeros(1), requires_grad=True)
    optimizer = Adam([p], lr=0.1, betas=(0.0, 0.5), eps=0.0, amsgrad=True)
    v = v_max = value = 0.0
    for t, g in enumerate([4.0, 0.1, 0.1], start=1):  # beta1 = 0: the step uses g itself
        p.grad = minidl.tensor(np.array([g]))
        optimizer.step()
        v = 0.5 * v + 0.5 * g * g
        v_max = max(v_max, v)
        value -= 0.1 / (1 - 0.0 ** t) * g / (np.sqrt(v_max) / np.sqrt(1 - 0.5 ** t))
        np.testing.assert_allclose(p.numpy(), [value], rtol=1e-12)
    np.testing.assert_allclose(optimizer.state[p]['max_exp_avg_sq'], [8.0])


def test_a_state_dict_saved_before_maximize_and_amsgrad_existed_still_loads():
    p = minidl.tensor(np.ones(2), requires_grad=True)
    old = Adam([p]).state_dict()
    for group in old['param_groups']:
        del group['maximize'], group['amsgrad']
    optimizer = Adam([p], amsgrad=True)
    optimizer.load_state_dict(old)
    assert optimizer.param_groups[0]['amsgrad'] is False
    assert optimizer.param_groups[0]['maximize'] is False


@pytest.mark.parametrize('make', [lambda ps: SGD(ps, maximize=1), lambda ps: Adam(ps, amsgrad='yes')])
def test_flags_must_be_booleans(make):
    with pytest.raises(TypeError, match=r"(SGD|Adam): (maximize|amsgrad) must be True or False"):
        make([minidl.tensor(np.ones(2), requires_grad=True)])
