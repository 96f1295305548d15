"""Every runnable config has a name of its own, so no two runs share a
default work dir or an output file, and every downstream config starts
from a pre-training config that exists."""
import glob
import os.path as osp
import re
from collections import defaultdict

import pytest

from mmbcssl.utils.launch import default_work_dir
from tests.conftest import REPO_ROOT, load_config

CONFIG_ROOT = osp.join(REPO_ROOT, 'configs')
# runnable configs: everything but bases, the transfer registries
# (data-set lists for tools/transfer_linear.py) and the suites (evaluation
# lists for tools/run_suite.py)
RUNNABLE = sorted(
    p for p in glob.glob(osp.join(CONFIG_ROOT, '**', '*.py'), recursive=True)
    if not any(f'/{d}/' in p for d in ('_base_', 'transfer', 'suites')))
PRETRAIN = sorted(
    glob.glob(osp.join(CONFIG_ROOT, 'dino', '*.py')) +
    glob.glob(osp.join(CONFIG_ROOT, 'esvit', '*.py')))
DOWNSTREAM = sorted(
    glob.glob(osp.join(CONFIG_ROOT, 'linear', '*.py')) +
    glob.glob(osp.join(CONFIG_ROOT, 'mask_rcnn', '*.py')) +
    glob.glob(osp.join(CONFIG_ROOT, 'upernet', '*.py')))
# keys whose value is a file or folder a run writes
OUTPUT_KEYS = ('work_dir', 'out_dir', 'out_file', 'out_file_path',
               'outfile_prefix', 'save_dir')


def _stem(path):
    return osp.splitext(osp.basename(path))[0]


def _outputs(node, prefix=''):
    """(key path, value) of every output path the config sets."""
    if isinstance(node, dict):
        for k, v in node.items():
            where = f'{prefix}.{k}' if prefix else k
            if k in OUTPUT_KEYS and isinstance(v, str):
                yield where, v
            yield from _outputs(v, where)
    elif isinstance(node, (list, tuple)):
        for i, v in enumerate(node):
            yield from _outputs(v, f'{prefix}[{i}]')


def test_runnable_configs_found():
    assert len(RUNNABLE) > 40 and len(DOWNSTREAM) > 25


def test_no_two_configs_share_a_work_dir_or_an_output():
    by_output = defaultdict(list)
    for path in RUNNABLE:
        cfg = load_config(path)
        work_dir = cfg.get('work_dir') or default_work_dir(path)
        by_output[osp.normpath(work_dir)].append(path)
        for key, value in _outputs(cfg._cfg_dict.to_dict()):
            if key != 'work_dir':
                by_output[osp.normpath(value)].append(f'{path}: {key}')
    shared = {k: v for k, v in by_output.items() if len(v) > 1}
    assert not shared, shared


def test_no_two_configs_share_a_file_name():
    by_name = defaultdict(list)
    for path in RUNNABLE:
        by_name[osp.basename(path)].append(path)
    shared = {k: v for k, v in by_name.items() if len(v) > 1}
    assert not shared, shared


def test_the_check_catches_a_shared_work_dir(tmp_path):
    # two configs of the same name in different folders: the situation the
    # names above avoid
    for folder in ('a', 'b'):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / 'same.py').write_text('x = 1\n')
    dirs = {default_work_dir(str(tmp_path / f / 'same.py')) for f in 'ab'}
    assert len(dirs) == 1


# <task>_<backbone>_<algorithm>-<epochs or demo>-pre_<gpus>xb<batch>-...
# (algorithm: dino, esvit, or supervised: trained with labels)
DOWNSTREAM_NAME = re.compile(
    r'^(linear|mask-rcnn|upernet)_[a-z0-9x-]+_(dino|esvit|supervised)-'
    r'(\d+e|demo)-pre_(fpn_)?\d+xb\d+-[a-z0-9.-]+_[a-z0-9-]+(-512x512)?$')


@pytest.mark.parametrize('path', DOWNSTREAM, ids=osp.basename)
def test_downstream_name_says_what_it_builds(path):
    name = _stem(path)
    assert DOWNSTREAM_NAME.match(name), name
    task = name.split('_')[0]
    folder = osp.basename(osp.dirname(path)).replace('_', '-')
    assert task == folder


@pytest.mark.parametrize('path', DOWNSTREAM, ids=osp.basename)
def test_downstream_starts_from_its_named_pretraining(path):
    """The default weights are those of the pre-training config the name
    gives: checkpoints/<pre-training config>_backbone.pth."""
    cfg = load_config(path)
    checkpoint = cfg.model.backbone.init_cfg.checkpoint
    name = _stem(path)
    algo, epochs = re.search(r'_(dino|esvit|supervised)-(\d+e|demo)-pre_',
                             name).groups()
    if epochs == 'demo':
        assert checkpoint.startswith('work_dirs/demo/')
        return
    match = re.fullmatch(r'checkpoints/(.+)_backbone\.pth', checkpoint)
    assert match, checkpoint
    pretrain = match.group(1)
    folder = 'esvit' if algo == 'esvit' else 'dino'
    source = osp.join(CONFIG_ROOT, folder, f'{pretrain}.py')
    assert osp.isfile(source), f'{path}: no pre-training config {source}'
    assert pretrain.endswith(f'_{epochs}'), (pretrain, epochs)
    # the backbone token names the pre-trained architecture
    backbone = name.split('_')[1]
    arch = backbone.split('-last4')[0].split('-gap')[0]
    assert pretrain.replace('esvit_', '').startswith(
        arch.replace('-3x3', '_3x3').replace('-5x5', '_5x5').replace(
            '-7x7', '_7x7').replace('-9x9', '_9x9').replace(
                '-15x15', '_15x15')), (arch, pretrain)


def test_every_pretraining_config_has_a_linear_probe():
    """Each pre-training config has a linear probe that starts from its
    backbone; a recipe option (metafile ``Variant Of``) is probed with the
    probe of the config it is a variant of, and the suite finds it."""
    from mmbcssl.evaluation.paper_results import load_entries
    from mmbcssl.suite.evaluations import downstream_config
    probes = {
        load_config(p).model.backbone.init_cfg.checkpoint
        for p in glob.glob(osp.join(CONFIG_ROOT, 'linear', '*.py'))
    }
    variant_of = {e.config: e.metadata['Variant Of'] for e in load_entries()
                  if e.metadata.get('Variant Of')}
    assert len(variant_of) == 3  # teacher drop path (x2), Swin-T 4 x 64
    for path in PRETRAIN:
        if path.endswith('_demo.py'):
            continue
        rel = osp.relpath(path, REPO_ROOT)
        base = variant_of.get(rel, rel)
        assert osp.isfile(osp.join(REPO_ROOT, base)) and base not in \
            variant_of, rel
        wanted = f'checkpoints/{_stem(base)}_backbone.pth'
        assert wanted in probes, f'no linear probe starts from {path}'
        assert downstream_config(path, 'linear') == downstream_config(
            osp.join(REPO_ROOT, base), 'linear') is not None
