"""Bad input to any public function or constructor gets ONE clear error that names the op (or
option), the expected and the actual value: never a deep NumPy traceback (UFuncTypeError,
ZeroDivisionError, AttributeError) and never a silent wrong answer. One table, CPU only.

Dtypes follow docs/dtypes.md: the floating-point ops refuse bool, integer and complex
tensors, and conv2d / linear / matmul / batch_norm refuse two floating-point dtypes."""
import numpy as np
import pytest

import minidl
import minidl.functional as F
import minidl.nn as nn
from minidl.data.loader import DataLoader
from minidl.optim import SGD, Adam
from minidl.optim import lr_scheduler as sched


def f32(*shape):
    return minidl.Tensor(np.ones(shape, np.float32))


def f64(*shape):
    return minidl.Tensor(np.ones(shape, np.float64))


def of(dtype, *shape):
    return minidl.Tensor(np.ones(shape, dtype))


def params():
    return [nn.Parameter(np.zeros(3, np.float32))]


def opt():
    return SGD(params(), lr=0.1)


class Labelled:
    """A dataset of 4 blank images with the given labels."""

    def __init__(self, labels=(0, 1, 2, 3)):
        self.images = np.zeros((4, 1, 2, 2), np.uint8)
        self.labels = np.asarray(labels)

    def __len__(self):
        return 4


# (call, exception class, regex the message must match)
DTYPES = {
    'conv2d_bool_input': (lambda: F.conv2d(of(bool, 1, 3, 5, 5), of(bool, 4, 3, 3, 3)),
                          TypeError, r"conv2d: input must be float16, float32 or float64, got bool"),
    'conv2d_int64_input': (lambda: F.conv2d(of(np.int64, 1, 3, 5, 5), f32(4, 3, 3, 3)),
                           TypeError, r"conv2d: input must be .*float64, got int64 .*\(1, 3, 5, 5\)"),
    'conv2d_complex_input': (lambda: F.conv2d(of(complex, 1, 3, 5, 5), of(complex, 4, 3, 3, 3)),
                             TypeError, r"conv2d: input must be .*, got complex128"),
    'conv2d_float32_x_float64_weight': (lambda: F.conv2d(f32(1, 3, 5, 5), f64(4, 3, 3, 3)),
                                        TypeError, r"conv2d: input is float32 but weight is "
                                                   r"float64"),
    'conv2d_float64_bias': (lambda: F.conv2d(f32(1, 3, 5, 5), f32(4, 3, 3, 3), f64(4)),
                            TypeError, r"conv2d: input is float32 but bias is float64"),
    'linear_mixed_floats': (lambda: F.linear(f32(2, 3), f64(4, 3)), TypeError,
                            r"linear: input is float32 but weight is float64"),
    'linear_int': (lambda: F.linear(of(np.int64, 2, 3), of(np.int64, 4, 3)), TypeError,
                   r"linear: input must be .*, got int64"),
    'matmul_mixed_floats': (lambda: f32(2, 3) @ f64(3, 2), TypeError,
                            r"matmul: input is float32 but other is float64"),
    'matmul_int': (lambda: of(np.int64, 2, 3) @ of(np.int64, 3, 2), TypeError,
                   r"matmul: input must be .*, got int64"),
    'matmul_int_and_float': (lambda: f32(2, 3).__rmatmul__(of(np.int64, 2, 2)), TypeError,
                             r"matmul: input must be .*, got int64"),
    'avg_pool2d_int': (lambda: F.avg_pool2d(of(np.int64, 1, 1, 4, 4), 2), TypeError,
                       r"avg_pool2d: input must be .*, got int64"),
    'max_pool2d_bool_with_padding': (lambda: F.max_pool2d(of(bool, 1, 1, 4, 4), 3, padding=1),
                                     TypeError, r"max_pool2d: input must be .* or an integer "
                                                r"dtype, got bool"),
    'local_response_norm_int': (lambda: F.local_response_norm(of(np.int64, 1, 3, 4, 4)),
                                TypeError, r"local_response_norm: input must be .*, got int64"),
    'batch_norm_int': (lambda: F.batch_norm(of(np.int64, 4, 3), None, None, training=True),
                       TypeError, r"batch_norm: input must be .*, got int64"),
    'batch_norm_float64_weight': (lambda: F.batch_norm(f32(4, 3), None, None, weight=f64(3),
                                                       training=True),
                                  TypeError, r"batch_norm: input is float32 but weight is "
                                             r"float64"),
    'batch_norm_int_running_mean': (lambda: F.batch_norm(f32(4, 3), np.zeros(3, np.int64),
                                                         np.ones(3), training=True),
                                    TypeError, r"batch_norm: running_mean must be a "
                                               r"floating-point array.*int64"),
    'softmax_int': (lambda: F.softmax(of(np.int64, 2, 3)), TypeError,
                    r"softmax: input must be .*, got int64"),
    'log_softmax_bool': (lambda: F.log_softmax(of(bool, 2, 3)), TypeError,
                         r"log_softmax: input must be .*, got bool"),
    'cross_entropy_int_logits': (lambda: F.softmax_cross_entropy(of(np.int64, 2, 3), [0, 1]),
                                 TypeError, r"softmax_cross_entropy: logits must be .*, got "
                                            r"int64"),
    'mse_loss_int': (lambda: F.mse_loss(of(np.int64, 2), of(np.int64, 2)), TypeError,
                     r"mse_loss: input must be .*, got int64"),
    'dropout_int': (lambda: F.dropout(of(np.int64, 6), 0.5), TypeError,
                    r"dropout: input must be float16, float32 or float64, got int64"),
    'mean_int': (lambda: of(np.int64, 3).mean(), TypeError, r"mean: input must be .*, got int64"),
    'relu_bool': (lambda: F.relu(of(bool, 3)), TypeError, r"relu: input must be .*, got bool"),
    'neg_bool': (lambda: -of(bool, 3), TypeError, r"neg: cannot negate a bool tensor"),
    'sub_bools': (lambda: of(bool, 3) - of(bool, 3), TypeError, r"sub: cannot subtract bool"),
    'uint8_plus_negative_int': (lambda: of(np.uint8, 2) + -1, ValueError,
                                r"add: .*-1 out of bounds for uint8"),
    'int_to_negative_int_power': (lambda: of(np.int64, 2) ** -1, ValueError,
                                  r"pow: Integers to negative integer powers"),
}

VALUES = {
    # tensors that are not numbers
    'tensor_of_none': (lambda: minidl.tensor(None), TypeError, r"tensor: expected a Tensor, "
                                                                r"an array or a number, got "
                                                                r"NoneType"),
    'tensor_of_string': (lambda: minidl.tensor('1.5'), TypeError, r"tensor: .*got str '1.5'"),
    'tensor_of_ragged_list': (lambda: minidl.tensor([[1, 2], [3]]), TypeError,
                              r"tensor: cannot make a tensor from list"),
    'tensor_of_strings': (lambda: minidl.Tensor(np.array(['a'])), TypeError,
                          r"tensor: a tensor holds numbers.*got dtype <U1"),
    'tensor_unknown_dtype': (lambda: minidl.tensor([1.0], dtype='foo'), TypeError,
                             r"tensor: 'foo' is not a dtype"),
    'add_none': (lambda: f32(2) + None, TypeError, r"add: expected a Tensor, an array or a "
                                                   r"number, got NoneType"),
    'mul_string': (lambda: f32(2) * 'a', TypeError, r"mul: .*got str 'a'"),
    'exp_string': (lambda: F.exp('a'), TypeError, r"exp: .*got str 'a'"),
    'conv2d_string_input': (lambda: F.conv2d('x', f32(4, 3, 3, 3)), TypeError,
                            r"conv2d: .*got str 'x'"),
    'compare_with_string': (lambda: f32(2) > 'a', TypeError,
                            r"gt: cannot compare a float32 tensor with str 'a'"),
    'backward_with_string_grad': (lambda: (f32(2) * minidl.tensor([1.0, 2.0], requires_grad=True)
                                           ).backward('a'), TypeError,
                                  r"backward: grad must be a Tensor or an array.*got str"),
    # axes and shapes
    'sum_string_axis': (lambda: f32(2, 3).sum(axis='a'), TypeError, r"sum: axis must be an "
                                                                    r"int, got 'a'"),
    'sum_repeated_axis': (lambda: f32(2, 3).sum(axis=(0, 0)), ValueError,
                          r"sum: axis \(0, 0\) names an axis more than once"),
    'mean_axis_out_of_range': (lambda: f32(2, 3).mean(axis=-3), IndexError,
                               r"mean: axis -3 is out of range for a tensor of shape \(2, 3\)"),
    'max_of_empty': (lambda: f32(0, 3).max(), ValueError, r"max: cannot reduce axis 0 of "
                                                          r"length 0.*\(0, 3\)"),
    'argmax_of_empty': (lambda: f32(0).argmax(), ValueError, r"argmax: there is no maximum"),
    'argmax_axis_out_of_range': (lambda: f32(2, 3).argmax(axis=5), IndexError,
                                 r"argmax: axis 5 is out of range"),
    'flatten_start_dim_out_of_range': (lambda: F.flatten(f32(2, 3, 4, 5), 5), IndexError,
                                       r"flatten: start_dim 5 is out of range for a tensor of "
                                       r"shape \(2, 3, 4, 5\)"),
    'flatten_negative_start_dim_out_of_range': (lambda: F.flatten(f32(2, 3), -3), IndexError,
                                                r"flatten: start_dim -3 is out of range"),
    'flatten_start_dim_on_1d': (lambda: F.flatten(f32(3), 1), IndexError,
                                r"flatten: start_dim 1 is out of range"),
    'transpose_axis_out_of_range': (lambda: f32(2, 3).transpose(0, 5), IndexError,
                                    r"transpose: axis 5 is out of range"),
    'reshape_string': (lambda: f32(2, 3).reshape('a'), TypeError,
                       r"reshape: a shape is a sequence of ints, got \('a',\)"),
    'reshape_float': (lambda: f32(2, 3).reshape(2, 1.5), TypeError, r"reshape: a shape .*1.5"),
    'concat_axis_out_of_range': (lambda: F.concat([f32(2, 3), f32(2, 3)], axis=5), IndexError,
                                 r"concat: axis 5 is out of range"),
    'concat_of_a_tensor': (lambda: F.concat(f32(2, 3)), TypeError,
                           r"concat: expected a list or tuple of tensors, got Tensor"),
    'pad_float_width': (lambda: F.pad(f32(2, 3), (1, 1.5)), TypeError, r"pad: .*1.5"),
    'softmax_string_axis': (lambda: F.softmax(f32(2, 3), 'a'), TypeError,
                            r"softmax: axis must be an int, got 'a'"),
    'cross_entropy_list_logits_of_wrong_rank': (lambda: F.softmax_cross_entropy(1.0, [0]),
                                                ValueError, r"softmax_cross_entropy: logits must "
                                                            r"be \(N, C\) or unbatched \(C,\), "
                                                            r"got shape \(\)"),
    'cross_entropy_unbatched_target_of_wrong_shape': (
        lambda: F.softmax_cross_entropy([1.0, 2.0], [0]), ValueError,
        r"softmax_cross_entropy: unbatched logits of shape \(2,\) take a 0-d target .* got "
        r"target shape \(1,\)"),
    'cross_entropy_string_label_smoothing': (lambda: F.softmax_cross_entropy(f32(2, 3), [0, 1],
                                                                             label_smoothing='a'),
                                             TypeError, r"softmax_cross_entropy: label_smoothing "
                                                        r"must be a number in \[0, 1\], got 'a'"),
    'mse_loss_list_of_wrong_shape': (lambda: F.mse_loss([1.0], [1.0, 2.0]), ValueError,
                                     r"mse_loss: input shape \(1,\) != target shape \(2,\)"),
    # op options
    'conv2d_zero_size_kernel': (lambda: F.conv2d(f32(2, 3, 5, 5), f32(4, 3, 0, 3)), ValueError,
                                r"conv2d: weight \(4, 3, 0, 3\) .* must have at least one"),
    'conv2d_no_output_channels': (lambda: F.conv2d(f32(2, 3, 5, 5), f32(0, 3, 3, 3)), ValueError,
                                  r"conv2d: weight \(0, 3, 3, 3\)"),
    'conv2d_fractional_groups': (lambda: F.conv2d(f32(2, 4, 5, 5), f32(4, 2, 3, 3), groups=2.0),
                                 TypeError, r"conv2d: groups must be an int >= 1, got 2.0"),
    'lrn_size_true': (lambda: F.local_response_norm(f32(1, 3, 4, 4), size=True), ValueError,
                      r"local_response_norm: size must be a positive int, got True"),
    'lrn_string_alpha': (lambda: F.local_response_norm(f32(1, 3, 4, 4), alpha='a'), TypeError,
                         r"local_response_norm: alpha must be a number, got 'a'"),
    'batch_norm_no_channels': (lambda: F.batch_norm(f32(2, 0), None, None, training=True),
                               ValueError, r"batch_norm: the input has no channels.*\(2, 0\)"),
    'batch_norm_string_momentum': (lambda: F.batch_norm(f32(2, 3), None, None, training=True,
                                                        momentum='a'),
                                   TypeError, r"batch_norm: momentum must be a number in "
                                              r"\[0, 1\], got 'a'"),
    'batch_norm_string_eps': (lambda: F.batch_norm(f32(2, 3), None, None, training=True,
                                                   eps='a'),
                              TypeError, r"batch_norm: eps must be a number >= 0, got 'a'"),
    'dropout_string_p': (lambda: F.dropout(f32(3), 'a'), TypeError,
                         r"dropout: p must be a number in \[0, 1\], got 'a'"),
    'dropout_p_none': (lambda: F.dropout(f32(3), None), TypeError, r"dropout: p .* got None"),
    # layers
    'Linear_zero_in_features': (lambda: nn.Linear(0, 3), ValueError,
                                r"Linear: in_features must be an int >= 1, got 0"),
    'Linear_negative_in_features': (lambda: nn.Linear(-1, 3), ValueError,
                                    r"Linear: in_features must be an int >= 1, got -1"),
    'Linear_zero_out_features': (lambda: nn.Linear(3, 0), ValueError,
                                 r"Linear: out_features must be an int >= 1, got 0"),
    'Linear_float_in_features': (lambda: nn.Linear(3.5, 2), TypeError,
                                 r"Linear: in_features must be an int >= 1, got 3.5"),
    'Conv2d_zero_kernel': (lambda: nn.Conv2d(3, 4, 0), ValueError,
                           r"Conv2d: kernel_size must be positive, got 0"),
    'Conv2d_zero_groups': (lambda: nn.Conv2d(3, 4, 3, groups=0), ValueError,
                           r"Conv2d: groups must be an int >= 1, got 0"),
    'Conv2d_zero_in_channels': (lambda: nn.Conv2d(0, 4, 3), ValueError,
                                r"Conv2d: in_channels must be an int >= 1, got 0"),
    'Conv2d_zero_stride': (lambda: nn.Conv2d(3, 4, 3, stride=0), ValueError,
                           r"Conv2d: stride must be positive, got 0"),
    'Conv2d_negative_padding': (lambda: nn.Conv2d(3, 4, 3, padding=-1), ValueError,
                                r"Conv2d: padding must be non-negative, got -1"),
    'Conv2d_string_groups': (lambda: nn.Conv2d(3, 4, 3, groups='a'), TypeError,
                             r"Conv2d: groups must be an int >= 1, got 'a'"),
    'BatchNorm2d_zero_features': (lambda: nn.BatchNorm2d(0), ValueError,
                                  r"BatchNorm2d: num_features must be an int >= 1, got 0"),
    'BatchNorm1d_momentum_none': (lambda: nn.BatchNorm1d(3, momentum=None), ValueError,
                                  r"BatchNorm1d: momentum=None .* is not supported"),
    'BatchNorm2d_wrong_channels': (lambda: nn.BatchNorm2d(3)(f32(2, 4, 2, 2)), ValueError,
                                   r"BatchNorm2d: expected 3 channels \(num_features\), got "
                                   r"input shape \(2, 4, 2, 2\)"),
    'Dropout_string_p': (lambda: nn.Dropout('a'), TypeError, r"Dropout: p must be a number"),
    'MaxPool2d_zero_kernel': (lambda: nn.MaxPool2d(0), ValueError,
                              r"MaxPool2d: kernel_size must be positive, got 0"),
    'AvgPool2d_zero_stride': (lambda: nn.AvgPool2d(2, stride=0), ValueError,
                              r"AvgPool2d: stride must be positive, got 0"),
    'LocalResponseNorm_zero_size': (lambda: nn.LocalResponseNorm(0), ValueError,
                                    r"LocalResponseNorm: size must be an int >= 1, got 0"),
    'Flatten_string_start_dim': (lambda: nn.Flatten('a'), TypeError,
                                 r"Flatten: start_dim must be an int, got 'a'"),
    'Softmax_string_axis': (lambda: nn.Softmax('a'), TypeError, r"Softmax: axis must be an int"),
    'CrossEntropyLoss_unknown_reduction': (lambda: nn.CrossEntropyLoss(reduction='avg'),
                                           ValueError, r"CrossEntropyLoss: reduction must be one "
                                                       r"of .*got 'avg'"),
    'kaiming_unknown_mode': (lambda: nn.init.kaiming_normal_(
        nn.Parameter(np.zeros((3, 3), np.float32)), mode='fan'), ValueError,
        r"kaiming init: mode must be 'fan_in' or 'fan_out', got 'fan'"),
    # optimizers and schedulers
    'SGD_string_lr': (lambda: SGD(params(), lr='0.1'), TypeError,
                      r"SGD: invalid lr '0.1' \(must be a number >= 0, got str\)"),
    'SGD_lr_none': (lambda: SGD(params(), lr=None), TypeError,
                    r"SGD: invalid lr None \(must be a number >= 0"),
    'SGD_string_momentum': (lambda: SGD(params(), lr=0.1, momentum='a'), TypeError,
                            r"SGD: invalid momentum 'a'"),
    'SGD_string_dampening': (lambda: SGD(params(), lr=0.1, dampening='a'), TypeError,
                             r"SGD: invalid dampening 'a'"),
    'SGD_params_none': (lambda: SGD(None, lr=0.1), TypeError,
                        r"SGD: params must be an iterable .*got NoneType"),
    'Adam_betas_not_a_pair': (lambda: Adam(params(), betas=0.9), TypeError,
                              r"Adam: invalid betas 0.9 \(must be a pair of numbers in \[0, 1\)"),
    'Adam_string_beta': (lambda: Adam(params(), betas=('a', 0.9)), TypeError,
                         r"Adam: invalid betas \('a', 0.9\)"),
    'StepLR_string_step_size': (lambda: sched.StepLR(opt(), 'a'), TypeError,
                                r"StepLR: step_size must be an int >= 1, got 'a'"),
    'StepLR_string_gamma': (lambda: sched.StepLR(opt(), 2, gamma='a'), TypeError,
                            r"StepLR: gamma must be a number, got 'a'"),
    'MultiStepLR_int_milestones': (lambda: sched.MultiStepLR(opt(), 5), TypeError,
                                   r"MultiStepLR: milestones must be a list .*got 5"),
    'MultiStepLR_string_milestone': (lambda: sched.MultiStepLR(opt(), ['a']), TypeError,
                                     r"MultiStepLR: each milestone must be an int >= 0, got 'a'"),
    'CosineAnnealingLR_T_max_none': (lambda: sched.CosineAnnealingLR(opt(), None), TypeError,
                                     r"CosineAnnealingLR: T_max must be an int >= 1, got None"),
    'LinearWarmup_string_start_factor': (lambda: sched.LinearWarmup(opt(), 2, start_factor='a'),
                                         TypeError, r"LinearWarmup: start_factor must be a "
                                                    r"number in \(0, 1\], got 'a'"),
    'ReduceLROnPlateau_negative_patience': (lambda: sched.ReduceLROnPlateau(opt(), patience=-1),
                                            ValueError, r"ReduceLROnPlateau: patience must be an "
                                                        r"int >= 0, got -1"),
    'ReduceLROnPlateau_string_metric': (lambda: sched.ReduceLROnPlateau(opt()).step('a'),
                                        TypeError, r"ReduceLROnPlateau.step: metric must be a "
                                                   r"number, got 'a'"),
    # data
    'DataLoader_batch_size_none': (lambda: DataLoader(Labelled(), batch_size=None), TypeError,
                                   r"DataLoader: batch_size must be an int >= 1, got None"),
    'DataLoader_string_seed': (lambda: DataLoader(Labelled(), seed='a'), TypeError,
                               r"DataLoader: seed must be an int, got 'a'"),
    'DataLoader_set_epoch_none': (lambda: DataLoader(Labelled()).set_epoch(None), TypeError,
                                  r"DataLoader.set_epoch: epoch must be an int >= 0, got None"),
}


@pytest.mark.parametrize('name', sorted(DTYPES))
def test_floating_point_ops_refuse_other_dtypes_by_name(name):
    call, error, pattern = DTYPES[name]
    with pytest.raises(error, match=pattern):
        call()


@pytest.mark.parametrize('name', sorted(VALUES))
def test_bad_values_raise_one_error_naming_the_op_or_option(name):
    call, error, pattern = VALUES[name]
    with pytest.raises(error, match=pattern):
        call()


def test_an_option_of_the_wrong_type_is_both_a_type_and_a_value_error():
    for error in (TypeError, ValueError):
        with pytest.raises(error, match=r"DataLoader: batch_size must be an int >= 1, got 2.5"):
            DataLoader(Labelled(), batch_size=2.5)


def test_an_axis_out_of_range_is_both_an_index_and_a_value_error():
    for error in (IndexError, ValueError):
        with pytest.raises(error, match=r"sum: axis 2 is out of range"):
            f32(2, 3).sum(axis=2)
