"""Hostile input to the `minidl` command, continued: the parser's own errors, negative
numbers written as 1e-4 or inf, the demo's options, an explicit --data that holds no data
set, and settings given on purpose that the run would not use. Each is one error line
naming the option, what it must be and what was given, exit status 2, and nothing
written; `--help` still prints the whole help."""
import shutil

import pytest

from minidl import cli, demo
from test_cli import TINY, data, minidl_command, run, snapshot  # noqa: F401  (tiny data)
from test_cli_hostile_s7 import FAST, one_line, train_refused, trained


def parser_error(capsys, argv):
    """(stderr, stdout) of `minidl ARGV` refused by the parser: exit status 2."""
    with pytest.raises(SystemExit) as exit_info:
        cli.main([str(a) for a in argv])
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    return captured.err, captured.out


# ----------------------------------------------------------------------------- parser
@pytest.mark.parametrize('argv, command, message', [
    (('train', '--model', 'resnet50'), 'train', "argument --model: invalid choice: 'resnet50'"),
    (('train', '--model', 'alexnet-cifar', '--dataset', 'mnist'), 'train',
     "argument --dataset: invalid choice: 'mnist'"),
    (('train', '--model', 'alexnet-cifar', 'extra'), 'train',
     'unrecognized arguments: extra'),
    (('train', '--epochs', 'x'), 'train', "argument --epochs: invalid int value: 'x'"),
    (('train', '--lr'), 'train', 'argument --lr: expected one argument'),
    (('eval',), 'eval', 'the following arguments are required: --checkpoint'),
    (('eval', '--checkpoint', 'best.npz', '--tta', '3'), 'eval',
     "argument --tta: invalid choice: 3"),
    (('summary', '--model', 'alexnet', '--batch', '2.5'), 'summary',
     "argument --batch: invalid int value: '2.5'"),
    (('plot',), 'plot', 'the following arguments are required: run_dir'),
    (('plot', 'run', 'extra'), 'plot', 'unrecognized arguments: extra'),
    (('study', 'lrn', '--seeds', 'x'), 'study', "argument --seeds: invalid int value: 'x'"),
    (('graph', '--model', 'alexnet-cifar'), 'graph',
     'the following arguments are required: --out'),
    (('demo', '--epochs', 'x'), 'demo', "argument --epochs: invalid int value: 'x'"),
    (('demo', 'extra'), 'demo', 'unrecognized arguments: extra'),
    ((), None, 'the following arguments are required: command'),
    (('fly',), None, "argument command: invalid choice: 'fly'"),
    (('--verbose', 'train'), None, 'unrecognized arguments: --verbose'),
])
def test_a_parser_error_is_one_line_naming_the_command_and_where_help_is(
        tmp_path, monkeypatch, capsys, argv, command, message):
    monkeypatch.chdir(tmp_path)
    err, out = parser_error(capsys, argv)
    prog = 'minidl' if command is None else f'minidl {command}'
    assert err.endswith('\n') and '\n' not in err[:-1], err    # no usage block
    assert err.startswith(f'{prog}: error: {message}'), err
    assert f'see `{prog} --help`' in err and 'usage:' not in err
    assert out == ''
    assert list(tmp_path.iterdir()) == []


def test_the_real_command_prints_a_parser_error_on_one_line(tmp_path):
    result = minidl_command('train', '--model', 'resnet50', cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == ''
    assert result.stderr.count('\n') == 1, result.stderr
    assert result.stderr.startswith("minidl train: error: argument --model: invalid choice: "
                                    "'resnet50'")


@pytest.mark.parametrize('argv, phrases', [
    (('--help',), ('usage: minidl', 'train', 'summary', 'demo')),
    (('train', '--help'), ('usage: minidl train', '--weight-decay', '--train-size')),
    (('eval', '-h'), ('usage: minidl eval', '--checkpoint', '--tta')),
    (('demo', '--help'), ('usage: minidl demo', '--epochs', '--seed')),
])
def test_help_still_prints_the_whole_help(capsys, argv, phrases):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(list(argv))
    assert exit_info.value.code in (0, None)
    out = capsys.readouterr().out
    assert out.count('\n') > 3
    for phrase in phrases:
        assert phrase in out, out


# ----------------------------------------------------------------------------- numbers
@pytest.mark.parametrize('flag, value, message', [
    ('--weight-decay', '-1e-4', '--weight-decay must be a non-negative finite number, '
                                'got -0.0001'),
    ('--weight-decay', '-5E-4', '--weight-decay must be a non-negative finite number, '
                                'got -0.0005'),
    ('--momentum', '-inf', '--momentum must be a number in [0, 1), got -inf'),
    ('--momentum', '-1e-1', '--momentum must be a number in [0, 1), got -0.1'),
    ('--lr', '-1e-3', '--lr must be a positive finite number, got -0.001'),
    ('--lr', '-Infinity', '--lr must be a positive finite number, got -inf'),
    ('--lr', '-nan', '--lr must be a positive finite number, got nan'),
    ('--label-smoothing', '-.5e0', '--label-smoothing must be a number in [0, 1], got -0.5'),
    ('--width', '-2.', '--width must be a positive number, got -2'),
])
def test_a_negative_number_in_any_notation_is_a_value_the_range_check_names(
        data, tmp_path, capsys, flag, value, message):
    # argparse took '-1e-4' and '-inf' for option names: "expected one argument"
    train_refused(capsys, tmp_path / 'r', *FAST, flag, value, phrases=[message])


@pytest.mark.parametrize('flag, value', [('--epochs', '-1e3'), ('--seed', '-inf')])
def test_a_negative_float_for_an_integer_option_is_an_invalid_int(capsys, flag, value):
    err, _ = parser_error(capsys, ('train', *FAST, flag, value))
    assert f"argument {flag}: invalid int value: '{value}'" in err and err.count('\n') == 1


def test_an_option_name_is_still_not_taken_for_a_value(capsys):
    err, _ = parser_error(capsys, ('train', '--lr', '--epochs', '1'))
    assert 'argument --lr: expected one argument' in err


# ----------------------------------------------------------------------------- demo
def test_the_demo_takes_its_documented_options_through_the_command(capsys):
    assert run('demo', '--epochs', 1, '--seed', 3) == 0
    out = capsys.readouterr().out
    assert 'epoch 1:' in out and 'epoch 2:' not in out


@pytest.mark.parametrize('flag, value, message', [
    ('--epochs', '0', '--epochs must be a positive integer, got 0'),
    ('--epochs', '-2', '--epochs must be a positive integer, got -2'),
    ('--seed', '-1', '--seed must be a non-negative integer, got -1'),
])
def test_the_demo_refuses_impossible_values_in_one_line(capsys, flag, value, message):
    assert run('demo', flag, value) == 2
    one_line(capsys, f'minidl demo: error: {message}')
    assert capsys.readouterr().out == ''
    # demo.main itself (it crashed with UnboundLocalError on --epochs 0)
    with pytest.raises(SystemExit) as exit_info:
        demo.main([flag, value])
    assert exit_info.value.code == 2
    one_line(capsys, f'minidl demo: error: {message}')


# ----------------------------------------------------------------------------- --data
def test_an_explicit_data_folder_without_the_data_set_is_an_error_not_a_fallback(
        data, tmp_path, capsys):
    # $MINIDL_DATA (the fixture) holds the data: an empty --data trained on it silently
    empty = tmp_path / 'empty'
    empty.mkdir()
    assert run('train', *FAST, '--data', empty, '--out', tmp_path / 'r') == 2
    one_line(capsys, f"--data {str(empty)!r} has no CIFAR10 train split",
             'no cifar-10-batches-py/ folder', 'expected cifar-10-batches-py/ holding '
             'data_batch_1', 'batches.meta', 'cifar-10-python.tar.gz',
             'or leave out --data')
    assert not (tmp_path / 'r').exists()
    assert list(empty.iterdir()) == []             # nothing downloaded into it either
    assert run('train', '--model', 'alexnet-cifar', '--dataset', 'fashion-mnist',
               '--epochs', 1, '--data', empty, '--out', tmp_path / 'r') == 2
    one_line(capsys, f"--data {str(empty)!r} has no FashionMNIST train split",
             'train-images-idx3-ubyte[.gz]', 'fashion-mnist/', 'fashion-mnist.s3')
    assert not (tmp_path / 'r').exists()


def test_an_explicit_data_folder_missing_one_file_names_it(data, tmp_path, capsys):
    partial = tmp_path / 'partial'
    shutil.copytree(data, partial)
    (partial / 'cifar-10-batches-py' / 'data_batch_3').unlink()
    assert run('train', *FAST, '--data', partial, '--out', tmp_path / 'r') == 2
    one_line(capsys, 'cifar-10-batches-py/ lacks data_batch_3')
    (partial / 'cifar-10-batches-py' / 'test_batch').unlink()
    assert run('eval', '--checkpoint', trained(tmp_path, capsys) / 'best.npz',
               '--data', partial) == 2
    one_line(capsys, 'has no CIFAR10 test split', 'lacks test_batch')


def test_data_naming_the_cifar_folder_itself_says_to_name_its_parent(data, tmp_path, capsys):
    inner = data / 'cifar-10-batches-py'
    assert run('train', *FAST, '--data', inner, '--out', tmp_path / 'r') == 2
    one_line(capsys, f'name its parent, {data}')
    assert not (tmp_path / 'r').exists()


def test_eval_resume_and_study_look_only_in_an_explicit_data_folder(data, tmp_path, capsys):
    out = trained(tmp_path, capsys)
    before = snapshot(out)
    empty = tmp_path / 'empty'
    empty.mkdir()
    for argv in (('train', '--resume', '--out', out, '--epochs', 2),
                 ('eval', '--checkpoint', out / 'best.npz'),
                 ('study', 'relu-vs-tanh', '--quick', '--out', tmp_path / 'study')):
        assert run(*argv, '--data', empty) == 2, argv
        one_line(capsys, f"--data {str(empty)!r} has no CIFAR10")
    assert snapshot(out) == before
    assert not (tmp_path / 'study').exists() and list(empty.iterdir()) == []
    # the folder that holds the data is used, and without --data $MINIDL_DATA is
    assert run('eval', '--checkpoint', out / 'best.npz', '--data', data) == 0
    assert run('eval', '--checkpoint', out / 'best.npz') == 0


# ----------------------------------------------------------------------------- unused
def settings(*argv):
    return cli.settings(cli.parser().parse_args(['train', *map(str, argv)]))


@pytest.mark.parametrize('optimizer', ['adam', 'adamw'])
def test_momentum_given_with_adam_is_an_error_naming_both_options(
        data, tmp_path, capsys, optimizer):
    assert run('train', *FAST, '--optimizer', optimizer, '--momentum', 0.5,
               '--out', tmp_path / 'r') == 2
    one_line(capsys, '--momentum 0.5', f'--optimizer {optimizer}', 'has no momentum')
    assert not (tmp_path / 'r').exists()


def test_momentum_given_to_a_model_whose_default_is_adam_says_so(data, tmp_path, capsys):
    assert run('train', *TINY, '--momentum', 0.9, '--out', tmp_path / 'r') == 2
    one_line(capsys, '--momentum 0.9', '--optimizer adam',
             "alexnet-cifar-2class's default", '--optimizer sgd')
    assert not (tmp_path / 'r').exists()


def test_the_default_momentum_with_adam_and_an_explicit_one_with_sgd_are_fine():
    assert settings('--model', 'alexnet-cifar', '--optimizer', 'adam')['momentum'] == 0.9
    assert settings('--model', 'alexnet-cifar-2class')['optimizer'] == 'adam'
    assert settings('--model', 'vgg-fast-cifar', '--optimizer', 'adamw')['momentum'] == 0.85
    assert settings('--model', 'alexnet-cifar-2class', '--optimizer', 'sgd',
                    '--momentum', 0.5)['momentum'] == 0.5


@pytest.mark.parametrize('argv, phrases', [
    (('--warmup', 3, '--epochs', 3), ('--warmup 3', '--epochs 3', 'never reach --lr')),
    (('--warmup', 5, '--epochs', 2), ('--warmup 5', '--epochs 2', 'at most 1')),
    # against the model's default number of epochs (alexnet-cifar: 30)
    (('--warmup', 40), ('--warmup 40', '--epochs 30', "alexnet-cifar's default")),
    (('--warmup', 1, '--schedule', 'plateau'), ('--warmup', '--schedule plateau')),
])
def test_a_warmup_the_run_would_not_finish_or_use_is_an_error_naming_both(
        data, tmp_path, capsys, argv, phrases):
    assert run('train', '--model', 'alexnet-cifar', *argv, '--out', tmp_path / 'r') == 2
    one_line(capsys, *phrases)
    assert not (tmp_path / 'r').exists()


@pytest.mark.parametrize('argv', [('--flip', 'random'), ('--translate', 2)])
def test_augmentation_options_with_no_augment_are_an_error_naming_both(data, tmp_path, capsys,
                                                                      argv):
    assert run('train', *FAST, '--no-augment', *argv, '--out', tmp_path / 'r') == 2
    one_line(capsys, f'--{argv[0][2:]} {argv[1]}', '--no-augment')
    assert not (tmp_path / 'r').exists()


def test_a_warmup_shorter_than_the_run_and_default_warmups_are_fine():
    assert settings('--model', 'alexnet-cifar', '--warmup', 2, '--epochs', 3)['warmup'] == 2
    # alexnet-cifar's default warm-up is 1 epoch: `--epochs 1` stays a quick run
    assert settings('--model', 'alexnet-cifar', '--epochs', 1)['warmup'] == 1
    # a model's default warm-up belongs to its default schedule: another schedule without
    # a warm-up (plateau) or with its own (triangle) runs without it, and says so
    assert settings('--model', 'vgg11-cifar', '--schedule', 'plateau')['warmup'] == 0
    assert settings('--model', 'alexnet-cifar', '--schedule', 'triangle')['warmup'] == 0
    assert settings('--model', 'alexnet-cifar', '--warmup', 0, '--schedule',
                    'plateau')['warmup'] == 0


@pytest.mark.parametrize('argv, phrases', [
    (('--train-size', 41), ('--train-size 41', 'more than the 40 training images',
                            'at most 40')),
    (('--test-size', 13), ('--test-size 13', 'more than the 12 test images')),
    (('--classes', 'airplane,ship', '--train-size', 9),
     ('--train-size 9', 'the 8 training images', 'airplane, ship')),
])
def test_a_train_or_test_size_above_the_data_set_is_an_error_naming_the_size(
        data, tmp_path, capsys, argv, phrases):
    # the fixture: 40 training images (4 per class), 12 test images
    assert run('train', *FAST, *argv, '--out', tmp_path / 'r') == 2
    one_line(capsys, *phrases)
    assert not (tmp_path / 'r').exists()


def test_a_train_size_equal_to_the_data_set_is_all_of_it(data, tmp_path, capsys):
    assert run('train', *FAST, '--train-size', 40, '--test-size', 12,
               '--out', tmp_path / 'r') == 0
    assert '40 train / 12 test images' in capsys.readouterr().out
