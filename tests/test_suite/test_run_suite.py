"""tools/run_suite.py and tools/report.py on the demo data with a tiny
backbone: results with fingerprints and per-image outcomes, skipping of
finished evaluations, --force, missing data as a row with its command, the
report's tables, flags and figures, and bad input."""
import json
import os
import os.path as osp

import pytest
import torch

from mmbcssl.cli import report as report_cli
from mmbcssl.cli import run_suite
from mmbcssl.suite import build_evaluations
from mmbcssl.utils.launch import UserError
from tests.conftest import REPO_ROOT
from tests.test_tools.test_knn_eval import knn_outcomes

TINY = osp.join(REPO_ROOT, 'tests', 'data', 'configs', 'tiny_classifier.py')
SMALL_KNN = ("ks=(5, 20), img_size=32, resize=36, batch_size=40, "
             "num_workers=0")


def _suite(tmp_path, demo_data, extra=''):
    path = tmp_path / 'suite.py'
    path.write_text(
        'evaluations = [\n'
        f"    dict(type='KNN', name='knn', data_root='{demo_data}/imagenet',"
        f' {SMALL_KNN}),\n'
        f"    dict(type='KNN', name='knn_random_init', random_init=True, "
        f"data_root='{demo_data}/imagenet', {SMALL_KNN}),\n"
        f"    dict(type='KNN', name='knn_elsewhere', "
        f"data_root='{tmp_path}/no_such_data', {SMALL_KNN}),\n"
        "    dict(type='Complexity', name='complexity', img_size=32),\n"
        # needs a linear result this suite does not have
        "    dict(type='Robustness', name='robustness', sets=('r', ), "
        'demo=True),\n' + extra + ']\n')
    return str(path)


def _save_weights(path, seed=1, config=TINY):
    from mmbcssl.apis import init_backbone
    model = init_backbone(config, None, seed=seed)
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in
                               model['backbone'].state_dict().items()}},
               str(path))
    return str(path)


@pytest.fixture(scope='module')
def suite_run(demo_data, tmp_path_factory):
    tmp = tmp_path_factory.mktemp('suite')
    ckpt = _save_weights(tmp / 'weights.pth')
    suite = _suite(tmp, demo_data)
    work = str(tmp / 'work')
    code = run_suite.main([TINY, ckpt, '--suite', suite, '--work-dir', work])
    return tmp, ckpt, suite, work, code


def _result(work, name):
    with open(osp.join(work, 'results', f'{name}.json')) as f:
        return json.load(f)


def test_each_evaluation_writes_a_result_with_its_fingerprint(suite_run):
    _, ckpt, _, work, code = suite_run
    assert code == 1  # some evaluations could not run
    knn = _result(work, 'knn')
    assert knn['status'] == 'ok'
    assert 0 <= knn['metrics']['knn/k20_top1'] <= 100
    fp = knn['fingerprint']
    assert fp['checkpoint']['file'] == ckpt
    assert fp['protocol']['ks'] == [5, 20]
    assert _result(work, 'knn_random_init')['fingerprint']['checkpoint'][
        'weights'] == 'random init'
    # the data it was measured on, recognised as the demo data by its
    # manifest, is stored with it
    from mmbcssl.datasets.demo.make import VERSION
    assert fp['data']['demo_version'] == VERSION
    assert fp['data']['root'] == osp.abspath(fp['run']['data_root'])
    comp = _result(work, 'complexity')
    # a count of parameters and FLOPs involves no weights
    assert comp['fingerprint']['checkpoint']['weights'] == 'not needed'
    # ResNet-18 at 8-64 channels with a 1000-class head: the head dominates
    assert comp['metrics']['params_m'] > comp['metrics']['params_m_backbone']
    # features were cached and shared by both k-NN runs' train banks only
    # when the weights are the same: two entries here
    cache = osp.join(work, 'features')
    assert len([d for d in os.listdir(cache)]) == 4  # 2 weights x 2 splits
    # each k-NN's per-image outcomes lie beside its result (moved there
    # from the tool's raw output), reproduce its top-1 numbers, and pair
    # the two weights' runs: the same val images
    records = {}
    for name in ('knn', 'knn_random_init'):
        result, outcomes = knn_outcomes(osp.join(work, 'results',
                                                 f'{name}.json'))
        assert result['outcomes']['file'] == f'{name}.outcomes.npz'
        assert not osp.exists(osp.join(work, 'raw', f'{name}.outcomes.npz'))
        assert len(outcomes.images) == 40
        records[name] = result['outcomes']
    assert records['knn']['images_sha256'] == \
        records['knn_random_init']['images_sha256']
    assert records['knn']['sha256'] != records['knn_random_init']['sha256']


def test_the_run_records_how_its_weights_were_made(suite_run):
    """suite.json and every result's fingerprint say how the evaluated
    weights were made: here a run of this code (no converter wrote the
    file) with a config that is no DINO recipe; the report lists it."""
    _, _, _, work, _ = suite_run
    with open(osp.join(work, 'suite.json')) as f:
        record = json.load(f)['pretraining']
    assert record == dict(config='tests/data/configs/tiny_classifier.py',
                          weights='a run of this code', recipe={},
                          variant=[])
    for name in ('knn', 'knn_random_init', 'complexity'):
        assert _result(work, name)['fingerprint']['pretraining'] == record
    from mmbcssl.suite.report import load_run, markdown
    text = markdown([load_run(work)])
    assert ('a run of this code (tests/data/configs/tiny_classifier.py); '
            'paper text') not in text  # no recipe: no claim about it
    assert 'a run of this code (tests/data/configs/tiny_classifier.py)' \
        in text.split('## Protocols')[1]


def test_missing_data_and_missing_needs_become_rows(suite_run):
    _, _, _, work, _ = suite_run
    missing = _result(work, 'knn_elsewhere')
    assert missing['status'] == 'missing'
    assert 'no_such_data' in missing['reason']
    assert 'knn_eval.py' in missing['command']
    robust = _result(work, 'robustness.r')
    assert robust['status'] == 'missing'
    assert "needs the 'linear' result" in robust['reason']


def test_a_rerun_skips_what_is_done_and_force_reruns_one(
        suite_run, capsys):
    tmp, ckpt, suite, work, _ = suite_run
    before = _result(work, 'knn')
    outcomes = osp.join(work, 'results', 'knn.outcomes.npz')
    stat = os.stat(outcomes)
    code = run_suite.main([TINY, ckpt, '--suite', suite, '--work-dir', work])
    assert code == 1
    out = capsys.readouterr().out
    assert 'knn: done already' in out or _result(work, 'knn') == before
    assert _result(work, 'knn') == before  # not rewritten
    # nor its outcomes: the same file, untouched
    again_stat = os.stat(outcomes)
    assert (again_stat.st_ino, again_stat.st_mtime_ns) == (stat.st_ino,
                                                           stat.st_mtime_ns)
    knn_outcomes(osp.join(work, 'results', 'knn.json'))
    code = run_suite.main([TINY, ckpt, '--suite', suite, '--work-dir', work,
                           '--force', 'knn', '--only', 'knn'])
    assert code == 0
    again = _result(work, 'knn')
    assert again['metrics'] == before['metrics']  # cached features
    knn_outcomes(osp.join(work, 'results', 'knn.json'))
    # the replaced result is kept with its outcomes, which it names
    superseded = osp.join(work, 'results', 'superseded')
    kept = sorted(os.listdir(superseded))
    assert len(kept) == 2 and kept[0].startswith('knn.')
    assert kept[1] == kept[0][:-len('.json')] + '.outcomes.npz'
    old, _ = knn_outcomes(osp.join(superseded, kept[0]))
    assert old['outcomes'] == dict(before['outcomes'], file=kept[1])


def _knn_suite(tmp_path, data_root, name):
    path = tmp_path / f'{name}.py'
    path.write_text("evaluations = [dict(type='KNN', name='knn', "
                    f"data_root='{data_root}', {SMALL_KNN})]\n")
    return str(path)


def test_a_knn_stopped_before_its_result_leaves_no_outcomes_to_trust(
        demo_data, tmp_path, monkeypatch):
    """The suite is stopped after the k-NN tool finished and its outcomes
    were moved beside the result, before the result was written: no
    result names that file, and the next run neither trusts nor keeps it
    (removed even when the evaluation then cannot run; replaced by the
    run's own when it does)."""
    from mmbcssl.suite import runner
    ckpt = _save_weights(tmp_path / 'weights.pth')
    work = str(tmp_path / 'work')
    args = [TINY, ckpt, '--work-dir', work, '--suite']
    results = osp.join(work, 'results')
    write_json = runner.write_json

    def stopped(path, obj):
        if path == osp.join(results, 'knn.json'):
            raise KeyboardInterrupt  # as a kill at this point
        write_json(path, obj)

    monkeypatch.setattr(runner, 'write_json', stopped)
    with pytest.raises(KeyboardInterrupt):
        run_suite.main(args + [_knn_suite(tmp_path, f'{demo_data}/imagenet',
                                          'stopped')])
    monkeypatch.setattr(runner, 'write_json', write_json)
    orphan = osp.join(results, 'knn.outcomes.npz')
    assert not osp.exists(osp.join(results, 'knn.json'))
    assert osp.isfile(orphan)
    # a run whose k-NN cannot run leaves no outcomes file at all
    assert run_suite.main(args + [_knn_suite(tmp_path, tmp_path / 'none',
                                             'no_data')]) == 1
    assert _result(work, 'knn')['status'] == 'missing'
    assert not osp.exists(orphan)
    # a file left there again is not taken for the next run's outcomes
    with open(orphan, 'wb') as f:
        f.write(b'left by a stopped run')
    assert run_suite.main(args + [_knn_suite(tmp_path,
                                             f'{demo_data}/imagenet',
                                             'again')]) == 0
    result, outcomes = knn_outcomes(osp.join(results, 'knn.json'))
    assert result['status'] == 'ok' and len(outcomes.images) == 40


def test_transfer_writes_outcomes_that_give_its_average_back(
        demo_data, tmp_path):
    """The suite's Transfer: the tool's per-image outcomes move beside
    results/transfer.json; 'transfer_mean' on them gives the result's
    average back."""
    from mmbcssl.evaluation.outcomes import read_outcomes
    from mmbcssl.evaluation.statistics import statistic
    registry = tmp_path / 'registry.py'
    registry.write_text(
        f"data_root = '{demo_data}'\n"
        "_demo = dict(root='imagenet', train='train', val=None, "
        "test='val')\n"
        "datasets = dict(demo_accuracy=dict(_demo, metric='accuracy'), "
        "demo_roc_auc=dict(_demo, metric='roc_auc'))\n")
    suite = tmp_path / 'transfer.py'
    suite.write_text(
        f"evaluations = [dict(type='Transfer', registry='{registry}', "
        "img_size=32, resize=36, batch_size=40, num_workers=0)]\n")
    work = str(tmp_path / 'work')
    assert run_suite.main([TINY, _save_weights(tmp_path / 'w.pth'),
                           '--suite', str(suite), '--work-dir', work]) == 0
    path = osp.join(work, 'results', 'transfer.json')
    result = _result(work, 'transfer')
    assert result['outcomes']['file'] == 'transfer.outcomes.npz'
    outcomes = read_outcomes(path, result['outcomes'])
    assert len(outcomes.images) == 2 * 40
    assert outcomes.images[40].startswith('demo_roc_auc/val/')
    entry = dict(outcomes.meta['metrics']['average'])
    fn = statistic(entry.pop('statistic'))
    assert fn(outcomes, None, **entry) == pytest.approx(
        result['metrics']['average'], rel=1e-12, abs=0)
    assert not osp.exists(osp.join(work, 'raw', 'transfer',
                                   'results.model.outcomes.npz'))


def test_another_checkpoint_in_the_same_work_dir_is_refused(
        suite_run, capsys):
    tmp, _, suite, work, _ = suite_run
    other = _save_weights(tmp / 'other.pth', seed=2)
    code = run_suite.main([TINY, other, '--suite', suite, '--work-dir',
                           work])
    assert code == 2
    assert 'use another --work-dir' in capsys.readouterr().err


def test_report_tables_flags_and_figures(suite_run, tmp_path):
    _, _, _, work, _ = suite_run
    out = tmp_path / 'report'
    assert report_cli.main([work, '--out', str(out)]) == 0
    text = (out / 'report.md').read_text()
    assert '## k-NN and linear probe' in text
    assert 'k-NN top-1, random init' in text
    # a result that is not there is a dash, never 0
    assert '| Linear top-1 |' not in text.split('## Missing')[0] or '–' in text
    assert '- missing: ' in text and 'knn_elsewhere (missing)' in text
    # a config that is no demo config, run on the demo data: the banner
    # follows the data
    assert text.count('**Demo data**. These numbers come from') == 1
    assert 'knn_eval.py' in text.split('## Missing results')[1]
    # the protocol list says which transform the runs really used
    protocols = text.split('## Protocols')[1]
    assert 'Measured here with: ResizeEdge(' in protocols
    assert '"scale": 36}) + CenterCrop(32)' in protocols
    assert (out / 'tables.tex').read_text().count('\\begin{tabular}') >= 1
    assert any(p.suffix == '.csv' for p in out.iterdir())
    # an existing report is not replaced without --overwrite
    assert report_cli.main([work, '--out', str(out)]) == 2
    assert report_cli.main([work, '--out', str(out), '--overwrite']) == 0


def test_report_flags_a_cell_of_another_protocol(suite_run, tmp_path):
    """Two runs whose k-NN was made with another k: the odd cell is
    flagged and the footnote names the field."""
    import shutil
    _, _, _, work, _ = suite_run
    other = tmp_path / 'other'
    shutil.copytree(work, other)
    path = other / 'results' / 'knn.json'
    result = json.loads(path.read_text())
    result['fingerprint']['protocol']['temperature'] = 0.1
    result['fingerprint']['protocol_id'] = 'changed'
    path.write_text(json.dumps(result))
    third = tmp_path / 'third'
    shutil.copytree(work, third)
    from mmbcssl.suite.report import load_run, markdown
    rows = [load_run(work), load_run(str(other)), load_run(str(third))]
    rows[1].label += ' (b)'
    rows[2].label += ' (c)'
    text = markdown(rows)
    flagged = [line for line in text.splitlines()
               if line.startswith('| ') and '†' in line]
    assert flagged and all('(b)' in line for line in flagged)
    note = next(line for line in text.splitlines() if line.startswith('† '))
    assert '(b)' in note and 'temperature' in note


def test_report_refuses_a_knn_result_of_another_run_copied_in(
        suite_run, tmp_path):
    """A real work dir keeps every result of its own; the knn.json of a
    run of other weights, copied in, is not shown as this run's number
    but named with both SHA-256s."""
    import shutil
    tmp, _, suite, work, _ = suite_run
    from mmbcssl.suite.report import load_run, markdown
    assert load_run(work).not_shown == []
    other = str(tmp_path / 'other')
    run_suite.main([TINY, _save_weights(tmp_path / 'other.pth', seed=3),
                    '--suite', suite, '--work-dir', other, '--only', 'knn'])
    theirs = _result(other, 'knn')
    assert theirs['status'] == 'ok'
    mine = tmp_path / 'mine'
    shutil.copytree(work, mine)
    shutil.copy(osp.join(other, 'results', 'knn.json'),
                mine / 'results' / 'knn.json')
    row = load_run(str(mine))
    assert 'knn_top1' not in row.values
    assert 'knn_random_init' in row.values  # its own results stay
    ((name, why), ) = row.not_shown
    assert name == 'knn'
    assert theirs['request']['checkpoint_sha256'][:12] in why
    text = markdown([row])
    assert '| k-NN top-1 |' not in text  # no row fills the column
    assert '| k-NN top-1 |' in markdown([load_run(work)])
    assert f'- not shown: {row.label} / knn: made with checkpoint' in text


NARROW_PROBE = osp.join(REPO_ROOT, 'tests', 'data', 'configs',
                        'narrow_linear_demo.py')


@pytest.fixture(scope='module')
def probe_suite(demo_data, tmp_path_factory):
    """A suite that trains the narrow demo probe (2 epochs) from weights
    that are not the probe config's default ones, then runs ImageNet-C and
    -R through it."""
    tmp = tmp_path_factory.mktemp('probe_suite')
    from mmengine.config import Config
    config = Config.fromfile(NARROW_PROBE)
    config.model.backbone.init_cfg = None  # not its default weights
    ckpt = _save_weights(tmp / 'narrow.pth', seed=3, config=config)
    loaders = [f'{k}_dataloader.num_workers=0' for k in ('train', 'val',
                                                         'test')]
    suite = tmp / 'suite.py'
    suite.write_text(
        'evaluations = [\n'
        f"    dict(type='LinearProbe', name='linear', config={NARROW_PROBE!r},"
        f" data_root='{demo_data}/imagenet', epochs=2, "
        f'cfg_options={loaders!r}),\n'
        "    dict(type='Robustness', name='robustness', sets=('c', 'r'), "
        f"demo=True, roots=dict(c='{demo_data}/imagenet-c', "
        f"r='{demo_data}/imagenet-r'), "
        f"classes='{demo_data}/imagenet/meta/classes.txt', "
        "cfg_options=['test_dataloader.num_workers=0']),\n]\n")
    work = str(tmp / 'work')
    args = [NARROW_PROBE, ckpt, '--suite', str(suite), '--work-dir', work]
    return args, ckpt, work, run_suite.main(args)


def test_robustness_names_the_backbone_its_probe_was_trained_from(
        probe_suite):
    """Every test of the probe (its last and best epochs, each robustness
    set) names, in its fingerprint, the weights the suite trained the probe
    from (a file that is not the probe config's default ``init_cfg``) and
    the probe checkpoint it evaluated."""
    from mmbcssl.evaluation.fingerprint import file_sha256
    _, ckpt, work, code = probe_suite
    assert code == 0
    linear = _result(work, 'linear')
    for name in ('robustness.c', 'robustness.r', 'linear'):
        fp = _result(work, name)['fingerprint']['checkpoint']
        assert fp['backbone_source']['sha256'] == file_sha256(ckpt), name
        assert fp['backbone_source']['named_by'] == 'caller'
        if name != 'linear':
            assert fp['sha256'] == linear['checkpoint_sha256']
    assert linear['backbone_weights'] == ckpt


def _outcomes(work, name):
    from mmbcssl.evaluation.outcomes import read_outcomes
    result = _result(work, name)
    return result, read_outcomes(
        osp.join(work, 'results', f'{name}.json'), result['outcomes'])


def test_probe_and_robustness_outcomes_reproduce_their_metrics(
        probe_suite, demo_data):
    """results/<name>.outcomes.npz beside each result: the probe's val
    outcomes at its last and at its best epoch (one image list, so they
    pair), ImageNet-C's 75 passes and -R's; each reproduces the number its
    result stores."""
    from tests.test_tools.test_robustness_demo import image_files, recompute
    _, _, work, _ = probe_suite
    result, linear = _outcomes(work, 'linear')
    assert set(linear.meta['metrics']) == {'accuracy/top1',
                                           'best_epoch/accuracy/top1'}
    assert sorted(linear.arrays) == ['best_epoch/top1', 'top1']
    with open(f'{demo_data}/imagenet/meta/val.txt') as f:
        assert linear.images == [osp.join('val', line.split()[0])
                                 for line in f]
    for name in ('linear', 'robustness.c', 'robustness.r'):
        result, outcomes = _outcomes(work, name)
        assert outcomes.meta['metrics'], name
        for key, entry in outcomes.meta['metrics'].items():
            assert recompute(outcomes, entry) == pytest.approx(
                result['metrics'][key], rel=1e-6), (name, key)
    _, c = _outcomes(work, 'robustness.c')
    assert len(c.arrays) == 75  # the demo tree has no extra corruptions
    assert c.images == image_files(f'{demo_data}/imagenet-c/snow/5')


def test_a_resumed_suite_reuses_the_outcomes_and_force_keeps_the_old(
        probe_suite):
    from mmbcssl.evaluation.outcomes import read_outcomes
    args, _, work, _ = probe_suite
    files = {n: osp.join(work, 'results', f'{n}.outcomes.npz')
             for n in ('linear', 'robustness.c', 'robustness.r')}
    before = {n: (open(p, 'rb').read(), os.stat(p).st_mtime_ns)
              for n, p in files.items()}
    results = {n: _result(work, n) for n in files}
    assert run_suite.main(args) == 0
    for name, path in files.items():  # skipped: result and outcomes kept
        assert _result(work, name) == results[name]
        assert (open(path, 'rb').read(), os.stat(path).st_mtime_ns) == \
            before[name]
        _outcomes(work, name)  # still the result's own
    # --force: the replaced result keeps its outcomes in superseded/
    assert run_suite.main(args + ['--force', 'robustness.r']) == 0
    folder = osp.join(work, 'results', 'superseded')
    (old, ) = [f for f in os.listdir(folder)
               if f.startswith('robustness.r.') and f.endswith('.json')]
    with open(osp.join(folder, old)) as f:
        superseded = json.load(f)
    kept = read_outcomes(osp.join(folder, old), superseded['outcomes'])
    assert kept.images == _outcomes(work, 'robustness.r')[1].images
    with open(osp.join(folder, superseded['outcomes']['file']), 'rb') as f:
        assert f.read() == before['robustness.r'][0]
    _outcomes(work, 'robustness.r')  # the new result has its own


def test_unknown_evaluation_type_lists_the_known_ones(tmp_path):
    path = tmp_path / 's.py'
    path.write_text("evaluations = [dict(type='KNNN')]\n")
    with pytest.raises(UserError, match=r"unknown evaluation type 'KNNN'; "
                       r'known: .*KNN.*LinearProbe'):
        build_evaluations(str(path))


def test_a_checkpoint_of_another_architecture_runs_nothing(tmp_path,
                                                           capsys):
    ckpt = tmp_path / 'other.pth'
    torch.save({'state_dict': {'backbone.stem.weight': torch.zeros(1)}},
               ckpt)
    suite = tmp_path / 's.py'
    suite.write_text("evaluations = [dict(type='Complexity')]\n")
    work = tmp_path / 'w'
    code = run_suite.main([TINY, str(ckpt), '--suite', str(suite),
                           '--work-dir', str(work)])
    assert code == 2
    err = capsys.readouterr().err
    assert 'weights missing' in err and 'convert.py' in err
    assert not work.exists()


def test_a_published_checkpoint_is_refused_with_its_converter_command(
        tmp_path, capsys):
    import timm
    net = timm.create_model('convnext_atto', pretrained=False)
    ckpt = tmp_path / 'convnext_atto.pth'
    torch.save(net.state_dict(), ckpt)
    suite = tmp_path / 's.py'
    suite.write_text("evaluations = [dict(type='Complexity')]\n")
    code = run_suite.main([TINY, str(ckpt), '--suite', str(suite),
                           '--work-dir', str(tmp_path / 'w')])
    assert code == 2
    err = capsys.readouterr().err
    assert f'convert.py {ckpt} <out> --from timm' in err


@pytest.mark.parametrize('name', ['paper', 'quick', 'demo', 'robustness'])
def test_shipped_suites_build(name):
    evaluations = build_evaluations(
        osp.join(REPO_ROOT, 'configs', 'suites', f'{name}.py'))
    names = [e.name for e in evaluations]
    if name != 'robustness':
        assert 'knn' in names
    if name != 'quick':
        assert {'linear', 'robustness.c', 'robustness.a'} <= set(names)
        # the probe runs before what needs it
        assert names.index('linear') < names.index('robustness.c')
    if name in ('paper', 'robustness'):
        # both protocol families: the paper's rows sit under the authors'
        assert {'robustness.c_resize256', 'robustness.a_1000way',
                'robustness.r_1000way'} <= set(names)


def test_linear_probe_reports_its_last_and_its_best_epoch(tmp_path,
                                                          monkeypatch):
    """The LinearProbe result holds the last epoch's top-1 and, labelled
    apart, the best epoch's (DINO's eval_linear.py number); the report puts
    them in two columns and the published linear number under the best
    epoch's. The tools are replaced by a stand-in that writes what
    train.py and test.py would."""
    from mmbcssl.suite.context import SuiteContext
    from mmbcssl.suite.evaluations import LinearProbe
    from mmbcssl.suite.report import load_run, markdown, published_rows
    top1 = {'epoch_20.pth': 61.0, 'best_accuracy_top1_epoch_13.pth': 64.5}

    def run_tool(name, tool, args, distributed=True):
        work = str(tmp_path / 'work' / 'linear')
        if tool == 'train.py':
            os.makedirs(work, exist_ok=True)
            for f in ('epoch_10.pth', *top1):
                open(osp.join(work, f), 'w').close()
            with open(osp.join(work, 'last_checkpoint'), 'w') as f:
                f.write(osp.join(work, 'epoch_20.pth'))
        else:
            value = top1[osp.basename(args[1])]
            with open(args[args.index('--out') + 1], 'w') as f:
                json.dump(dict(metrics={'accuracy/top1': value},
                               fingerprint=dict(protocol=dict(
                                   task='classification'))), f)
        return f'{tool} {" ".join(args)}'

    dino = osp.join(REPO_ROOT, 'configs', 'dino', 'bcssl-t_9x9_100e.py')
    ctx = SuiteContext(dino, None, str(tmp_path / 'work'))
    monkeypatch.setattr(ctx, 'run_tool', run_tool)
    monkeypatch.setattr(LinearProbe, '_check_data', lambda *a: None)
    result = LinearProbe(name='linear').run(ctx, {})
    assert result['config'].endswith(
        'linear_bcssl-t-9x9_dino-100e-pre_8xb128-coslr-100e_in1k.py')
    assert result['checkpoint'].endswith('epoch_20.pth')
    metrics = result['metrics']
    assert metrics['accuracy/top1'] == 61.0
    assert metrics['best_epoch/accuracy/top1'] == 64.5
    assert metrics['best_epoch/epoch'] == 13
    # the report: two labelled columns, the paper's number under the best
    os.makedirs(ctx.path('results'))
    with open(ctx.path('suite.json'), 'w') as f:
        json.dump(dict(config=dino, checkpoint_sha256=None,
                       pretraining=dict(config=osp.relpath(dino, REPO_ROOT),
                                        weights='a run of this code')), f)
    with open(ctx.path('results', 'linear.json'), 'w') as f:
        json.dump(dict(result, status='ok'), f)
    row = load_run(ctx.work_dir)
    assert row.values['linear_top1'] == 61.0
    assert row.values['linear_top1_best'] == 64.5
    (paper, ) = published_rows([row])
    assert paper.values['linear_top1_best'] == 75.0
    assert 'linear_top1' not in paper.values
    text = markdown([row, paper])
    assert '| Linear top-1 (last epoch) | Linear top-1 (best epoch) |' \
        in text


def test_linear_probe_without_a_best_checkpoint_says_what_to_set(tmp_path):
    from mmbcssl.suite.context import EvaluationFailed
    from mmbcssl.suite.evaluations import LinearProbe
    (tmp_path / 'epoch_100.pth').touch()
    with pytest.raises(EvaluationFailed, match="save_best='accuracy/top1'"):
        LinearProbe().best_checkpoint(str(tmp_path))


def test_knn_robustness_checks_a_and_r_against_the_official_lists():
    from mmbcssl.suite.evaluations import KNNRobustness
    found = {e.name: e.settings['query'] for e in KNNRobustness(
        roots=dict(a='A', r='R', sketch='S')).expand()}
    for key in ('a', 'r'):
        query = found[f'knnrobustness.{key}']
        i = query.index('--query-classes')
        assert query[i + 1] == f'imagenet-{key}'
    assert '--query-classes' not in found['knnrobustness.sketch']


def test_a_second_run_in_a_busy_work_dir_is_refused_naming_the_holder(
        suite_run, capsys):
    """Two suite runs in one work dir would train the same ``linear/`` at
    once: the second is refused in one line naming the first; the lock
    dies with its holder (here a real process, SIGKILLed), so a killed
    run leaves nothing stale behind."""
    import signal
    import subprocess
    import sys

    from mmbcssl.suite.runner import work_dir_lock
    tmp, ckpt, suite, work, _ = suite_run
    holder = subprocess.Popen(
        [sys.executable, '-c',
         'import sys, time\n'
         'from mmbcssl.suite.runner import work_dir_lock\n'
         f'with work_dir_lock({work!r}):\n'
         '    print("held", flush=True)\n'
         '    time.sleep(120)\n'],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == 'held'
        before = sorted(os.listdir(osp.join(work, 'results')))
        code = run_suite.main([TINY, ckpt, '--suite', suite, '--work-dir',
                               work, '--force', 'knn', '--only', 'knn'])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2
        assert len(err) == 1
        assert f'pid {holder.pid}' in err[0] and 'in use' in err[0]
        assert 'another --work-dir' in err[0]
        # nothing was run or moved aside
        assert sorted(os.listdir(osp.join(work, 'results'))) == before
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with work_dir_lock(work):  # free again once its holder is gone
        pass


def test_a_tool_dies_with_the_suite_that_started_it(tmp_path):
    """The OOM killer SIGKILLs the suite process only: the tool it was
    running (here a real child started through ``SuiteContext.run_tool``)
    must not train on as an orphan beside the next run."""
    import signal
    import subprocess
    import sys
    import time
    pid_file = tmp_path / 'child.pid'
    parent = subprocess.Popen(
        [sys.executable, '-c',
         'import sys\n'
         'from mmbcssl.suite.context import SuiteContext\n'
         f'ctx = SuiteContext({TINY!r}, None, {str(tmp_path / "w")!r})\n'
         # a stand-in tool that records its pid and would run for minutes
         'ctx.tool_command = lambda tool, args, distributed=True: [\n'
         '    sys.executable, "-c",\n'
         '    "import os, time; "\n'
         f'    "open({str(pid_file)!r}, \'w\').write(str(os.getpid())); "\n'
         '    "time.sleep(300)"]\n'
         'ctx.run_tool("slow", "train.py", [])\n'],
        cwd=REPO_ROOT)
    try:
        deadline = time.time() + 60
        while not (pid_file.exists() and pid_file.read_text()):
            assert time.time() < deadline, 'the child never started'
            assert parent.poll() is None, 'the suite process ended early'
            time.sleep(0.1)
        child = int(pid_file.read_text())
        os.kill(child, 0)  # running
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    deadline = time.time() + 10
    while True:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break  # gone (reaped by init once it ended)
        with open(f'/proc/{child}/stat') as f:
            if f.read().split(') ')[1].startswith('Z'):
                break  # ended, waiting for init to reap it
        assert time.time() < deadline, 'the tool outlived its suite'
        time.sleep(0.1)
