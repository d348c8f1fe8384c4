"""Hostile input to the `minidl` command (explicit --data, the numeric options of train,
extra words): each is one error line naming the option, what it must be and what was
given, exit status 2, and nothing written: no run or result directory, no checkpoint."""
import json

import pytest

from minidl import cli
from test_cli import data, run, snapshot  # noqa: F401  (tiny-data fixture)
from test_cli_hostile_s7 import FAST, one_line, train_refused, trained


# ----------------------------------------------------------------------------- --data
def test_an_explicit_data_folder_that_does_not_exist_is_an_error_not_a_fallback(
        data, tmp_path, capsys):
    # $MINIDL_DATA (the fixture) holds the data: a mistyped --data trained on it silently
    missing = tmp_path / 'nowhere'
    assert run('train', *FAST, '--data', missing, '--out', tmp_path / 'r') == 2
    one_line(capsys, f"--data must be an existing directory, got {str(missing)!r}",
             'does not exist')
    assert not (tmp_path / 'r').exists()
    assert not missing.exists()                    # nor made by a download into it


def test_an_explicit_data_that_is_a_file_or_empty_is_an_error(data, tmp_path, capsys):
    afile = tmp_path / 'cifar.tar.gz'
    afile.write_bytes(b'not a folder')
    assert run('train', *FAST, '--data', afile, '--out', tmp_path / 'r') == 2
    one_line(capsys, f"--data must be an existing directory, got {str(afile)!r}",
             'not a directory')
    assert run('train', *FAST, '--data', '', '--out', tmp_path / 'r') == 2
    one_line(capsys, "--data must be an existing directory, got ''")
    assert not (tmp_path / 'r').exists()


def test_eval_resume_and_study_refuse_a_missing_data_folder_too(data, tmp_path, capsys):
    out = trained(tmp_path, capsys)
    before = snapshot(out)
    missing = tmp_path / 'nowhere'
    for argv in (('train', '--resume', '--out', out, '--epochs', 2),
                 ('eval', '--checkpoint', out / 'best.npz'),
                 ('study', 'relu-vs-tanh', '--quick', '--out', tmp_path / 'study')):
        assert run(*argv, '--data', missing) == 2, argv
        one_line(capsys, f"--data must be an existing directory, got {str(missing)!r}")
    assert snapshot(out) == before
    assert not (tmp_path / 'study').exists() and not missing.exists()


def test_an_existing_data_folder_is_used_and_without_data_the_search_order_holds(
        data, tmp_path, capsys, monkeypatch):
    assert run('train', *FAST, '--data', data, '--out', tmp_path / 'a') == 0
    assert json.loads((tmp_path / 'a' / 'config.json').read_text())['data'] == str(data)
    # no --data: $MINIDL_DATA, as documented
    assert run('train', *FAST, '--out', tmp_path / 'b') == 0
    assert 'data' not in json.loads((tmp_path / 'b' / 'config.json').read_text())


# ----------------------------------------------------------------------------- numbers
@pytest.mark.parametrize('value', ['5', '1', '1.0', '-0.1', 'nan', 'inf', '-inf', '-1e-2'])
@pytest.mark.parametrize('joined', [True, False])
def test_momentum_must_be_in_0_to_1_excluding_1(data, tmp_path, capsys, value, joined):
    # (a separate '-inf' or '-1e-2' is a value too, not an option name)
    given = [f'--momentum={value}'] if joined else ['--momentum', value]
    assert run('train', *FAST, *given, '--out', tmp_path / 'r') == 2
    shown = f"{float(value):g}"
    one_line(capsys, f"--momentum must be a number in [0, 1), got {shown}")
    assert not (tmp_path / 'r').exists()


@pytest.mark.parametrize('value', [0.0, 0.5, 0.85, 0.9, 0.999])
def test_momentum_from_0_to_below_1_is_accepted(value):
    cfg = dict(cli.GENERIC, model='alexnet-cifar', momentum=value)
    cli.check_settings(cfg)                        # no error
    assert cfg['momentum'] == value


def test_a_config_with_momentum_out_of_range_is_refused_naming_the_file(data, tmp_path,
                                                                        capsys):
    out = trained(tmp_path, capsys)
    config = json.loads((out / 'config.json').read_text())
    (out / 'config.json').write_text(json.dumps(dict(config, momentum=1.5)))
    before = snapshot(out)
    assert run('train', '--resume', '--out', out, '--epochs', 2) == 2
    one_line(capsys, "config.json: 'momentum' must be a number in [0, 1), got 1.5")
    assert snapshot(out) == before


# every other numeric option of train: NaN, infinities and out-of-range values
@pytest.mark.parametrize('flag, value, message', [
    ('--lr', 'nan', '--lr must be a positive finite number, got nan'),
    ('--lr', 'inf', '--lr must be a positive finite number, got inf'),
    ('--lr', '0', '--lr must be a positive finite number, got 0'),
    ('--lr', '-0.1', '--lr must be a positive finite number, got -0.1'),
    ('--weight-decay', 'nan', '--weight-decay must be a non-negative finite number, got nan'),
    ('--weight-decay', 'inf', '--weight-decay must be a non-negative finite number, got inf'),
    ('--weight-decay', '-0.001', '--weight-decay must be a non-negative finite number, '
                                 'got -0.001'),
    ('--label-smoothing', 'nan', '--label-smoothing must be a number in [0, 1], got nan'),
    ('--label-smoothing', 'inf', '--label-smoothing must be a number in [0, 1], got inf'),
    ('--label-smoothing', '1.5', '--label-smoothing must be a number in [0, 1], got 1.5'),
    ('--label-smoothing', '-0.1', '--label-smoothing must be a number in [0, 1], got -0.1'),
    ('--width', 'nan', '--width must be a positive number, got nan'),
    ('--width', 'inf', '--width must be a positive number, got inf'),
    ('--width', '0', '--width must be a positive number, got 0'),
    ('--epochs', '0', '--epochs must be a positive integer, got 0'),
    ('--epochs', '-1', '--epochs must be a positive integer, got -1'),
    ('--batch-size', '0', '--batch-size must be a positive integer, got 0'),
    ('--train-size', '0', '--train-size must be a positive integer, got 0'),
    ('--test-size', '-5', '--test-size must be a positive integer, got -5'),
    ('--warmup', '-1', '--warmup must be a non-negative integer, got -1'),
    ('--seed', '-1', '--seed must be a non-negative integer, got -1'),
    ('--translate', '9', '--translate must be an integer from 0 to 8 (pixels), got 9'),
    ('--translate', '-1', '--translate must be an integer from 0 to 8 (pixels), got -1'),
    ('--eval-every', '-1', '--eval-every must be an integer >= 0'),
])
def test_every_numeric_option_of_train_refuses_nan_inf_and_out_of_range(
        data, tmp_path, capsys, flag, value, message):
    train_refused(capsys, tmp_path / 'r', *FAST, flag, value, phrases=[message])


@pytest.mark.parametrize('flag', ['--epochs', '--batch-size', '--warmup', '--seed',
                                  '--translate', '--eval-every', '--train-size'])
@pytest.mark.parametrize('value', ['nan', 'inf', '2.5'])
def test_integer_options_refuse_nan_inf_and_fractions_at_the_parser(flag, value, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(['train', *map(str, FAST), flag, value])
    assert exit_info.value.code == 2
    assert f"argument {flag}: invalid int value: '{value}'" in capsys.readouterr().err


# ----------------------------------------------------------------------------- extra words
def test_study_list_refuses_a_study_name_instead_of_ignoring_it(data, capsys):
    assert run('study', '--list', 'extra') == 2
    one_line(capsys, "--list takes no study name", "got 'extra'")
    assert capsys.readouterr().out == ''           # nothing listed either


@pytest.mark.parametrize('options, shown', [
    (('--quick',), '--quick'),
    (('--seeds', 2), '--seeds'),
    (('--out', 'somewhere'), '--out'),
    (('--data', 'somewhere'), '--data'),
    (('--device', 'cpu'), '--device'),
    (('relu-vs-tanh', '--quick', '--seeds', 2), "'relu-vs-tanh', --quick, --seeds"),
])
def test_study_list_refuses_the_options_of_a_run_it_would_ignore(tmp_path, monkeypatch,
                                                                  capsys, options, shown):
    monkeypatch.chdir(tmp_path)
    assert run('study', '--list', *options) == 2
    one_line(capsys, '--list', f"got {shown}")
    assert list(tmp_path.iterdir()) == []
    assert run('study', '--list') == 0              # alone it lists
    assert 'relu-vs-tanh' in capsys.readouterr().out


@pytest.mark.parametrize('argv', [
    ('study', 'relu-vs-tanh', 'extra', '--quick'),
    ('plot', 'run', 'extra'),
    ('eval', '--checkpoint', 'best.npz', 'extra'),
    ('summary', '--model', 'alexnet', 'extra'),
    ('graph', '--model', 'alexnet-cifar', '--out', 'g.dot', 'extra'),
    ('train', '--model', 'alexnet-cifar', 'extra'),
])
def test_an_extra_word_is_an_error_in_every_sub_command(tmp_path, monkeypatch, capsys, argv):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(list(argv))
    assert exit_info.value.code == 2
    assert "unrecognized arguments: extra" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_demo_refuses_an_extra_word(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(['demo', 'extra'])
    assert exit_info.value.code == 2
    assert "unrecognized arguments: extra" in capsys.readouterr().err
