"""The four newcomer paths of the README's "I want to..." table, run as the
guides write them, on the demo data.

Each guide marks the commands it promises with ``<!-- commands: NAME -->``
before a fenced block (the add-a-backbone guide marks the files it writes
with ``<!-- file: PATH -->`` and ``<!-- append: PATH -->``). The tests read
those blocks, so a guide that drifts from the tools fails here. Paths are
moved into temporary folders (``data/demo`` to the ``demo_data`` fixture,
``work_dirs/`` and ``checkpoints/`` under ``tmp_path``); where a path runs
at test scale instead of the guide's, the test says what it changes.
"""
import glob
import importlib
import importlib.util
import json
import os
import os.path as osp
import re
import shlex
import shutil
import subprocess
import sys
from argparse import Namespace
from typing import Dict, List, Tuple

import pytest
import torch
import torchvision
from mmengine.config import Config

from tests.conftest import REPO_ROOT, free_port

DOCS = osp.join(REPO_ROOT, 'docs')


def _read(rel: str) -> str:
    with open(osp.join(REPO_ROOT, rel), encoding='utf-8') as f:
        return f.read()


def _blocks(rel: str) -> List[Tuple[str, str, str]]:
    """``(kind, name, body)`` of every marked fenced block of a doc."""
    pattern = re.compile(
        r'<!-- (commands|file|append): (\S+) -->\n```\w*\n(.*?)```', re.S)
    return pattern.findall(_read(rel))


def guide_commands(rel: str, name: str) -> List[List[str]]:
    """The commands of the block marked ``name``: continuation lines
    joined, comments dropped, each split as the shell would."""
    (body, ) = [b for kind, n, b in _blocks(rel)
                if kind == 'commands' and n == name]
    joined = re.sub(r'\\\n\s*', ' ', body)
    return [shlex.split(line, comments=True) for line in joined.splitlines()
            if line.strip() and not line.lstrip().startswith('#')]


def localise(argv: List[str], tmp: str, demo: str) -> List[str]:
    """The guide's relative outputs and demo data moved to test folders
    (also inside ``key=value`` options)."""
    out = []
    for arg in argv:
        arg = re.sub(r'(?<![\w/])data/demo', demo, arg)
        arg = re.sub(r'(?<![\w/])(work_dirs|checkpoints)/',
                     lambda m: f'{tmp}/{m.group(1)}/', arg)
        out.append(arg)
    return out


def run_tool(argv: List[str]) -> int:
    """``python tools/<x>.py args`` in this process: the ``main`` the tool
    script wraps, with the same arguments."""
    assert argv[:1] == ['python'] and argv[1].startswith('tools/'), argv
    script = _read(argv[1])
    module = re.search(r'^from (\S+) import main$', script, re.M).group(1)
    return importlib.import_module(module).main(argv[2:])


# (a) ------------------------------------------------------------------


def test_demo_path_runs_the_stages_its_docs_list(tmp_path):
    """The README's demo commands are the scripts that exist; the stage
    table of docs/get_started.md names, in order, the tool each stage of
    the demo driver runs; and the first stage (the data) makes every root
    the later stages read. (The whole demo takes about 15 minutes: the
    other stages' commands are compared, not run.)"""
    assert guide_commands('README.md', 'demo') == [
        ['bash', 'tools/demo.sh'], ['bash', 'tools/run_tests.sh']]
    # demo.sh sets up, then hands over to the demo driver
    assert 'tools/run_demo.py' in _read('tools/demo.sh')
    assert 'from mmbcssl.cli.demo import main' in _read('tools/run_demo.py')

    from mmbcssl.cli.demo import build_stages
    data, work = str(tmp_path / 'demo'), str(tmp_path / 'work')
    stages = build_stages(Namespace(work_dir=work, data_root=data))
    table = re.findall(r'^\| ([1-9]\d*) \| (.*) \| [^|]+ \|$',
                       _read('docs/get_started.md'), re.M)
    assert [int(k) for k, _ in table] == list(range(1, len(stages) + 1))
    for (_, row), stage in zip(table, stages):
        tool = osp.relpath(stage.command()[1], REPO_ROOT)
        named = re.findall(r'`(tools/[\w/]+\.py)', row)
        assert named and named[0] == tool, (row, tool)
    stage_of = {s.name: s for s in stages}
    assert stage_of['DINO pre-training of BC-SSL-T 9x9 (demo size)'] \
        .command()[2] == 'configs/dino/bcssl-t_9x9_100e_demo.py'

    # stage 1 as the driver runs it, at the tests' size
    make = stages[0].command()
    assert make[1:] == [osp.join(REPO_ROOT, 'tools/misc/make_demo_data.py'),
                        '--out', data]
    small = ['--num-classes', '2', '--train-per-class', '2',
             '--val-per-class', '1', '--image-size', '32', '--coco-train',
             '2', '--coco-val', '1', '--coco-size', '64',
             '--robust-per-class', '1', '--c-per-class', '1']
    assert run_tool(['python', 'tools/misc/make_demo_data.py'] + make[2:] +
                    small) == 0
    # what stage 2 trains on and the demo suite of stage 3 reads
    assert osp.isdir(osp.join(data, 'imagenet', 'train'))
    suite = _read('configs/suites/demo.py')
    roots = set(re.findall(r"\{data_root\}/([\w-]+)", suite))
    assert {'imagenet', 'imagenet-c', 'imagenet-sketch', 'imagenet-r',
            'imagenet-a', 'coco'} <= roots
    for root in roots:
        assert osp.isdir(osp.join(data, root)), root


# (b) ------------------------------------------------------------------

NARROW_DINO = osp.join(REPO_ROOT, 'tests', 'data', 'configs',
                       'narrow_dino_demo.py')


def test_pretrain_path_launches_on_two_processes(demo_data, tmp_path):
    """docs/user_guides/pretrain.md, "Try the launch on CPU first": its
    tools/dist_train.sh command on 2 gloo CPU processes, with a narrow
    BC-SSL of the same recipe (tests/data/configs/narrow_dino_demo.py) and
    8 images, so it runs 2 iterations; the log says what the guide says."""
    make, launch = guide_commands('docs/user_guides/pretrain.md',
                                  'pretrain-cpu')
    # the demo_data fixture was made by the same function, smaller
    assert make == ['python', 'tools/misc/make_demo_data.py', '--out',
                    'data/demo']
    assert launch[:3] == ['tools/dist_train.sh',
                          'configs/dino/bcssl-t_9x9_100e_demo.py', '2']
    argv = localise(launch, str(tmp_path), demo_data)
    argv[1] = NARROW_DINO
    argv += ['train_dataloader.dataset.indices=8',
             'train_dataloader.batch_size=2',
             'train_dataloader.num_workers=0', 'train_cfg.max_epochs=1']
    assert argv[-5] == f'train_dataloader.dataset.data_root=' \
        f'{demo_data}/imagenet'  # the guide's last option, localised
    env = dict(os.environ, PYTHON=sys.executable, PORT=str(free_port()),
               OMP_NUM_THREADS='1')
    proc = subprocess.run(['bash', osp.join(REPO_ROOT, argv[0])] + argv[1:],
                          capture_output=True, text=True, timeout=600,
                          cwd=REPO_ROOT, env=env)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    assert 'Distributed training: True' in log
    assert 'GPU number: 2' in log
    assert 'Epoch(train) [1][2/2]' in log, log[-3000:]
    work = argv[argv.index('--work-dir') + 1]
    assert work.startswith(str(tmp_path))
    assert osp.isfile(osp.join(work, 'epoch_1.pth'))


# (c) ------------------------------------------------------------------

GUIDE_C = 'docs/user_guides/published_checkpoints.md'


def _missing_rows_explained() -> Dict[str, str]:
    """Row name -> why, from the guide's "The rows that stay missing"."""
    text = _read(GUIDE_C)
    section = text[text.index('### The rows that stay missing'):]
    section = section[:section.index('\n## ')]
    table = dict(re.findall(r'^\| `([\w.*]+)` \| (.*?) \|', section, re.M))
    tail = section[section.index('Without the data sets'):]
    for name in re.findall(r'`(knn|linear|robustness\.\*)`', tail):
        table[name] = 'data'
    return table


def _demo_scale_paper_suite(path: str, demo: str, absent: str) -> str:
    """configs/suites/paper.py with its k-NN on the demo data (64 px) and
    the linear probe pointed at a folder that does not exist: a ResNet-50
    probe is too long for a test, and its row then shows what a machine
    without ImageNet gets."""
    evaluations = []
    for entry in Config.fromfile(
            osp.join(REPO_ROOT, 'configs', 'suites', 'paper.py')).evaluations:
        entry = dict(entry)
        if entry['type'] == 'KNN':
            entry.update(data_root=f'{demo}/imagenet', ks=(10, 20),
                         img_size=64, resize=73, batch_size=64,
                         num_workers=0)
        if entry['type'] == 'LinearProbe':
            entry.update(data_root=absent)
        evaluations.append(entry)
    with open(path, 'w') as f:
        f.write(f'evaluations = {evaluations!r}\n')
    return path


def test_published_resnet50_path_runs_the_paper_suite(demo_data, tmp_path):
    """docs/user_guides/published_checkpoints.md on a random-weight file in
    the layout of DINO's release (torchvision's ResNet-50 without ``fc``):
    convert, the paper suite (one process, its k-NN on the demo data;
    params/FLOPs and throughput left out: they need neither data nor a
    downstream config, and take seconds to minutes of a ResNet-50 at 224 px
    on a CPU), the report. Every
    missing row is one the guide explains, and the published row is DINO's
    release, not the paper's 100-epoch ResNet-50."""
    tmp = str(tmp_path)
    wget, convert, suite, report = guide_commands(GUIDE_C,
                                                  'published-resnet50')
    assert wget[0] == 'wget'
    release = osp.basename(wget[1])
    assert release == 'dino_resnet50_pretrain.pth'
    net = torchvision.models.resnet50()
    del net.fc  # the backbone-only release
    torch.save(net.state_dict(), osp.join(tmp, release))

    convert = localise(convert, tmp, demo_data)
    convert[2] = osp.join(tmp, convert[2])  # the downloaded file
    assert run_tool(convert) == 0

    assert suite[:4] == ['tools/dist_suite.sh',
                         'configs/dino/resnet50_300e.py',
                         'checkpoints/dino_resnet50_backbone.pth', '8']
    args = localise(suite[1:3] + suite[4:], tmp, demo_data)
    i = args.index('--suite')
    assert args[i + 1] == 'configs/suites/paper.py'
    args[i + 1] = _demo_scale_paper_suite(
        osp.join(tmp, 'paper_demo-scale.py'), demo_data,
        osp.join(tmp, 'no-imagenet'))
    from mmbcssl.suite import build_evaluations
    names = [e.name for e in build_evaluations(args[i + 1])]
    run = [n for n in names if n not in ('complexity', 'throughput')]
    from mmbcssl.cli import run_suite
    # exit 1: the suite has missing rows, as the guide says
    assert run_suite.main(args + ['--gpus', '1', '--only'] + run) == 1

    work = args[args.index('--work-dir') + 1]
    results = {n: json.load(open(osp.join(work, 'results', f'{n}.json')))
               for n in run}
    assert results['knn']['status'] == 'ok'
    explained = _missing_rows_explained()
    assert set(explained) == {'mask_rcnn', 'upernet', 'knn', 'linear',
                              'robustness.*'}
    missing = {n for n, r in results.items() if r['status'] != 'ok'}
    assert all(results[n]['status'] == 'missing' for n in missing)
    assert missing == {n for n in run if n.split('.')[0] in (
        'linear', 'robustness', 'mask_rcnn', 'upernet')}
    for name in missing:
        why = explained[name if name in explained else 'robustness.*']
        reason = results[name]['reason']
        if why == 'data':
            assert 'does not exist' in reason or \
                "needs the 'linear' result" in reason, reason
        else:  # the two rows the guide's table explains
            folder = name
            assert reason.startswith(
                f'no configs/{folder} config starts from '
                'configs/dino/resnet50_300e.py'), reason
    suite_json = json.load(open(osp.join(work, 'suite.json')))
    assert suite_json['pretraining']['weights'] == \
        'converted from dino_resnet50_pretrain.pth'

    assert run_tool(localise(report, tmp, demo_data)) == 0
    out = localise(report, tmp, demo_data)[report.index('--out') + 1]
    text = open(osp.join(out, 'report.md')).read()
    published = [line for line in text.splitlines()
                 if line.startswith('| resnet50_300e (published)')]
    assert published
    for line in published:
        assert "DINO's released dino_resnet50_pretrain.pth" in line, line
    # the k-NN and linear-probe table: DINO's README numbers for the file,
    # daggered: they were measured on ImageNet at 224 px, the cells beside
    # them on the demo data
    assert '| 67.50† | 75.30† |' in published[0], published[0]
    assert 'not comparable with them' in text
    assert '58.90' not in text  # the paper's 100-epoch ResNet-50


# (d) ------------------------------------------------------------------

GUIDE_D = 'docs/advanced_guides/add_a_backbone.md'


def _model_configs(root: str) -> List[str]:
    """The configs a metafile must list (tests/test_docs.py's rule)."""
    return sorted(
        osp.relpath(p, root)
        for p in glob.glob(osp.join(root, 'configs', '**', '*.py'),
                           recursive=True)
        if '/_base_/' not in p and '/transfer/' not in p
        and '/suites/' not in p)


def test_add_a_backbone_path(demo_data, tmp_path):
    """docs/advanced_guides/add_a_backbone.md in a copy of configs/: each
    place the guide names is needed (its check fails without it and passes
    with it), the walking tests of the DINO and linear-probe configs accept
    the new configs, and k-NN of the new backbone runs on the demo data."""
    from mmpretrain.registry import MODELS

    from mmbcssl.cli import render_paper_tables
    from mmbcssl.evaluation.paper_results import load_entries
    from tests.test_configs_dino import \
        test_dino_config_builds_and_runs_its_crop_sizes
    from tests.test_configs_eval import test_linear_probe_freezes_backbone
    from tests.test_configs_layout import DOWNSTREAM_NAME

    root = str(tmp_path / 'repo')
    shutil.copytree(osp.join(REPO_ROOT, 'configs'), osp.join(root, 'configs'))
    shutil.copy(osp.join(REPO_ROOT, 'model-index.yml'), root)
    blocks = _blocks(GUIDE_D)
    files = {n: b for kind, n, b in blocks if kind == 'file'}
    appends = {n: b for kind, n, b in blocks if kind == 'append'}
    assert sorted(appends) == ['configs/dino/metafile.yml',
                               'configs/linear/metafile.yml']
    code = files.pop('mmbcssl/models/backbones/simple_convnet.py')
    for rel, body in files.items():
        with open(osp.join(root, rel), 'w') as f:
            f.write(body)
    dino = osp.join(root, 'configs/dino/simple-convnet_100e.py')
    probe = osp.join(root, 'configs/linear/linear_simple-convnet_dino-100e-'
                     'pre_8xb128-coslr-100e_in1k.py')
    assert sorted(files) == sorted(
        osp.relpath(p, root) for p in
        (dino, probe, osp.join(root, 'configs/_base_/models/'
                               'simple-convnet.py')))

    # 1-2: the class is registered only once its module is imported
    assert MODELS.get('SimpleConvNet') is None
    with pytest.raises(KeyError, match='SimpleConvNet'):
        MODELS.build(Config.fromfile(dino).model)
    module = tmp_path / 'simple_convnet.py'
    module.write_text(code)
    spec = importlib.util.spec_from_file_location('simple_convnet',
                                                  str(module))
    try:
        spec.loader.exec_module(importlib.util.module_from_spec(spec))
        _follow_the_configs(root, dino, probe, appends, demo_data, tmp_path,
                            load_entries, render_paper_tables,
                            DOWNSTREAM_NAME)
        # the config-walking tests accept the new configs
        test_dino_config_builds_and_runs_its_crop_sizes(dino)
        test_linear_probe_freezes_backbone(probe)
    finally:
        MODELS._module_dict.pop('SimpleConvNet', None)


def _follow_the_configs(root, dino, probe, appends, demo_data, tmp_path,
                        load_entries, render_paper_tables, name_rule):
    rel_dino = osp.relpath(dino, root)

    def probes_of(config):
        return [e.config for e in load_entries(root)
                if e.config.startswith('configs/linear/')
                and e.metadata.get('Pre-training') == config]

    # 5-8: unlisted configs fail the metafile rule; the suite finds no probe
    listed = sorted(e.config for e in load_entries(root))
    assert listed != _model_configs(root)
    assert probes_of(rel_dino) == []
    for rel, body in appends.items():
        with open(osp.join(root, rel), 'a') as f:
            f.write(body)
    assert sorted(e.config for e in load_entries(root)) == \
        _model_configs(root)
    assert probes_of(rel_dino) == [osp.relpath(probe, root)]
    stem = osp.splitext(osp.basename(probe))[0]
    assert name_rule.match(stem), stem
    assert Config.fromfile(probe).model.backbone.init_cfg.checkpoint == \
        'checkpoints/simple-convnet_100e_backbone.pth'

    # 9: the tables are stale until the guide's render command runs
    args = ['--root', root]
    assert render_paper_tables.main(args + ['--check']) == 2
    render, knn = guide_commands(GUIDE_D, 'add-a-backbone')
    assert render == ['python', 'tools/misc/render_paper_tables.py']
    assert run_tool(render + args) == 0
    assert render_paper_tables.main(args + ['--check']) == 0
    assert '`simple-convnet_100e.py`' in open(
        osp.join(root, 'configs/dino/README.md')).read()

    # k-NN of the random initialisation, from the new pre-training config
    knn = localise(knn, str(tmp_path), demo_data)
    assert knn[2] == 'configs/dino/simple-convnet_100e.py'
    knn[2] = dino
    assert run_tool(knn) == 0
    out = json.load(open(knn[knn.index('--out') + 1]))
    assert out['metrics'], out
