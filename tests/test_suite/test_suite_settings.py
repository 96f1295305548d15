"""Suite entries are typed: an unknown key or a wrongly typed value is
refused before anything runs; evaluations find what they read by type;
the report reads results by what they measure, not by their names."""
import json
import os.path as osp

import pytest

from mmbcssl.cli import run_suite
from mmbcssl.suite import SuiteContext, SuiteRunner, build_evaluations
from mmbcssl.suite.evaluations import (KNN, Finetune, LinearProbe,
                                       downstream_config)
from mmbcssl.utils.launch import UserError
from tests.conftest import REPO_ROOT

TINY = osp.join(REPO_ROOT, 'tests', 'data', 'configs', 'tiny_classifier.py')
DINO = osp.join(REPO_ROOT, 'configs', 'dino', 'bcssl-t_9x9_100e.py')


def _suite(tmp_path, text):
    path = tmp_path / 'suite.py'
    path.write_text(f'evaluations = [\n{text}]\n')
    return str(path)


def test_a_misspelt_key_fails_in_one_line_before_anything_runs(
        tmp_path, capsys):
    suite = _suite(tmp_path, "    dict(type='Complexity', img_size=32),\n"
                   "    dict(type='KNN', name='knn', temprature=0.5),\n")
    work = tmp_path / 'work'
    code = run_suite.main([TINY, 'none', '--suite', suite, '--work-dir',
                           str(work)])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "unknown setting 'temprature'" in err
    # the accepted keys, the one meant among them
    assert 'KNN accepts: batch_size, data_root' in err
    assert 'temperature' in err.split('accepts:')[1]
    assert not work.exists()  # not even the Complexity entry ran


def test_a_value_of_the_wrong_type_is_refused(tmp_path):
    suite = _suite(tmp_path, "    dict(type='Throughput', batch_size='128'),"
                   '\n')
    with pytest.raises(UserError, match="setting 'batch_size' must be int, "
                       "got '128'"):
        build_evaluations(suite)
    suite = _suite(tmp_path, "    dict(type='KNN', random_init=1),\n")
    with pytest.raises(UserError, match="'random_init' must be bool"):
        build_evaluations(suite)


def test_the_settings_hold_the_defaults_and_the_request_what_was_given():
    """Defaults live in the settings class; the request (what makes a
    result reusable) keeps the keys as given, so a resumed suite keeps
    reusing its results."""
    knn = KNN(name='knn', data_root='x', ks=(5, 20))
    assert knn.s.temperature == 0.07 and knn.s.ks == (5, 20)
    ctx = SuiteContext(TINY, None, 'w')
    assert knn.request(ctx)['settings'] == dict(data_root='x', ks=(5, 20))


def test_the_robustness_sets_read_the_linear_probe_by_type(tmp_path):
    """A probe named anything: the robustness sets still read it."""
    suite = _suite(tmp_path, "    dict(type='LinearProbe', name='probe'),\n"
                   "    dict(type='Robustness', sets=('c', 'r')),\n")
    evaluations = build_evaluations(suite)
    sets = [e for e in evaluations if e.name.startswith('robustness.')]
    assert [e.name for e in sets] == ['robustness.c', 'robustness.r']
    assert all(e.links == {LinearProbe: 'probe'} for e in sets)
    probe = dict(status='ok', metrics={'accuracy/top1': 70.0})
    assert sets[0]._needed(dict(probe=probe), LinearProbe) is probe


def test_several_probes_need_a_choice(tmp_path):
    two = ("    dict(type='LinearProbe', name='a'),\n"
           "    dict(type='LinearProbe', name='b'),\n")
    with pytest.raises(UserError, match='several .a, b.; choose one with '
                       'probe='):
        build_evaluations(_suite(tmp_path, two + "    dict(type='Robustness',"
                                 " sets=('r', )),\n"))
    chosen = build_evaluations(_suite(
        tmp_path, two + "    dict(type='Robustness', sets=('r', ), "
        "probe='b'),\n"))
    assert chosen[-1].links == {LinearProbe: 'b'}
    with pytest.raises(UserError, match="reads the LinearProbe 'c', which "
                       'the suite does not have; it has: a, b'):
        build_evaluations(_suite(tmp_path, two + "    dict(type='Robustness',"
                                 " sets=('r', ), probe='c'),\n"))


def test_suite_json_records_the_resolved_downstream_configs(tmp_path):
    ctx = SuiteContext(DINO, None, str(tmp_path))
    runner = SuiteRunner(ctx, [LinearProbe(name='linear'),
                               Finetune(name='mask_rcnn')])
    downstream = runner.record()['downstream']
    assert downstream == dict(
        linear=downstream_config(DINO, 'linear'),
        mask_rcnn=downstream_config(DINO, 'mask_rcnn'))
    assert downstream['linear'].endswith(
        'linear_bcssl-t-9x9_dino-100e-pre_8xb128-coslr-100e_in1k.py')
    assert downstream['mask_rcnn'].startswith('configs/mask_rcnn/')


def test_the_report_reads_a_result_by_its_kind_not_its_name(tmp_path):
    """A LinearProbe result named 'probe' fills the linear columns."""
    from mmbcssl.suite.report import load_run
    (tmp_path / 'results').mkdir()
    (tmp_path / 'suite.json').write_text(json.dumps(dict(
        config='tests/data/configs/tiny_classifier.py', checkpoint=None,
        checkpoint_sha256=None, pretraining=dict(weights='random init'))))
    result = dict(status='ok', request=dict(type='LinearProbe',
                                            name='probe', settings={}),
                  metrics={'accuracy/top1': 61.0,
                           'best_epoch/accuracy/top1': 64.5})
    (tmp_path / 'results' / 'probe.json').write_text(json.dumps(result))
    row = load_run(str(tmp_path))
    assert row.values == dict(linear_top1=61.0, linear_top1_best=64.5)


def test_a_probe_given_by_checkpoint_is_evaluated_not_trained(tmp_path):
    """LinearProbe(checkpoint=...) (tools/robustness_report.py's clean
    run): one tools/test.py of that checkpoint, whose result the
    robustness sets read as the probe's."""
    launched = []

    class Recording(SuiteContext):

        def run_tool(self, name, tool, args, distributed=True):
            launched.append((tool, args))
            out = args[args.index('--out') + 1]
            with open(out, 'w') as f:
                json.dump(dict(metrics={'accuracy/top1': 40.0}), f)
            return f'{tool} {" ".join(args)}'

    ckpt = str(tmp_path / 'probe.pth')
    probe = LinearProbe(name='clean', config=TINY, checkpoint=ckpt,
                        cfg_options=['test_dataloader.num_workers=0'])
    result = probe.run(Recording(TINY, None, str(tmp_path / 'w')), {})
    ((tool, args), ) = launched
    assert tool == 'test.py' and args[:2] == [TINY, ckpt]
    assert 'test_dataloader.num_workers=0' in args
    assert (result['checkpoint'], result['config']) == (ckpt, TINY)
    assert result['metrics'] == {'accuracy/top1': 40.0}
