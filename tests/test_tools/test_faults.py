"""Faults a user meets, injected for real (corrupt files on disk, bad
values, misspelt keys), each reported by the tools as one line that names
the file or key and the fix, with exit status 2 and no traceback."""
import os
import os.path as osp
import re
import shutil
import struct
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch
from mmengine.runner.checkpoint import save_checkpoint

import mmbcssl  # noqa: F401
from mmbcssl.apis import load_backbone_weights
from mmbcssl.cli import convert, extract_backbone, knn_eval
from mmbcssl.cli import train as train_api
from mmpretrain.registry import MODELS
from tests.conftest import REPO_ROOT

TINY_CLS = osp.join(REPO_ROOT, 'tests', 'data', 'configs',
                    'tiny_classifier.py')
DINO_DEMO = osp.join(REPO_ROOT, 'configs', 'dino', 'bcssl-t_9x9_100e_demo.py')
LINEAR_DEMO = osp.join(
    REPO_ROOT, 'configs', 'linear',
    'linear_bcssl-t-9x9_dino-demo-pre_1xb32-coslr-20e_in1k-demo.py')
BCSSL_CLS = osp.join(REPO_ROOT, 'configs', '_base_', 'models',
                     'bcssl-t_9x9.py')
TINY_ARCH = dict(depths=[1, 1, 1, 1], channels=[8, 8, 16, 16])


def _data(root):
    return [f'{s}_dataloader.dataset.data_root={root}'
            for s in ('train', 'val', 'test')]


def _one_line(capsys):
    """The error line: the last line on stderr, the only one starting with
    'error:' (library warnings may come before it), no traceback."""
    err = capsys.readouterr().err.strip()
    lines = err.splitlines()
    assert lines and 'Traceback' not in err, err[-3000:]
    assert [x for x in lines if x.startswith('error:')] == lines[-1:], err
    return lines[-1]


@pytest.fixture
def no_runner(monkeypatch):
    """Pre-flight errors must come before anything is built."""

    def refuse(cfg):
        raise AssertionError('the runner was built')

    monkeypatch.setattr(train_api, 'build_runner', refuse)


# --- a corrupt image, read in a DataLoader worker ---------------------------
def test_corrupt_image_in_a_dataloader_worker(demo_data, tmp_path, capsys):
    root = str(tmp_path / 'imagenet')
    shutil.copytree(osp.join(demo_data, 'imagenet'), root)
    with open(osp.join(root, 'meta', 'train.txt')) as f:
        broken = osp.join(root, 'train', f.readline().split()[0])
    with open(broken, 'wb') as f:
        f.write(b'\xff\xd8\xff\xe0 not really a JPEG')
    code = train_api.main([
        TINY_CLS, '--work-dir', str(tmp_path / 'work'), '--cfg-options',
        *_data(root), 'train_dataloader.num_workers=1',
        'train_dataloader.batch_size=80',  # every image in one batch
        'train_dataloader.dataset.pipeline.0.type=LoadImageFromFileSafe'
    ])
    err = _one_line(capsys)
    assert code == 2
    assert err.startswith(f'error: cannot read image {broken} (')
    assert "on_error='skip'" in err
    assert err.endswith('(in DataLoader worker process 0)')


# --- truncated checkpoints ---------------------------------------------------
@pytest.fixture(scope='module')
def truncated(tmp_path_factory):
    """A real backbone checkpoint, cut in half (an interrupted copy)."""
    folder = tmp_path_factory.mktemp('truncated')
    backbone = MODELS.build(dict(type='BCSSL', arch=TINY_ARCH,
                                 kernel_size=9))
    whole = str(folder / 'whole.pth')
    save_checkpoint({'state_dict': {f'teacher.backbone.{k}': v for k, v in
                                    backbone.state_dict().items()}}, whole)
    path = str(folder / 'epoch_100.pth')
    with open(whole, 'rb') as f, open(path, 'wb') as out:
        out.write(f.read()[:osp.getsize(whole) // 2])
    return path


def test_truncated_checkpoint_extract_backbone(truncated, tmp_path, capsys):
    out = str(tmp_path / 'bb.pth')
    assert extract_backbone.main([truncated, out]) == 2
    err = _one_line(capsys)
    assert err.startswith(f'error: checkpoint {truncated} (')
    assert 'is truncated or corrupt' in err
    assert not osp.exists(out)


def test_truncated_checkpoint_load_backbone_weights(truncated):
    from mmbcssl.fileio import CorruptCheckpointError
    backbone = MODELS.build(dict(type='BCSSL', arch=TINY_ARCH,
                                 kernel_size=9))
    with pytest.raises(CorruptCheckpointError, match=truncated):
        load_backbone_weights(backbone, truncated)


def test_truncated_checkpoint_knn_eval(truncated, demo_data, capsys):
    code = knn_eval.main([BCSSL_CLS, '--data-root',
                          osp.join(demo_data, 'imagenet'), '--checkpoint',
                          truncated, '--num-workers', '0'])
    assert code == 2
    assert _one_line(capsys).startswith(f'error: checkpoint {truncated} (')


def test_truncated_checkpoint_init_cfg(truncated, demo_data, tmp_path,
                                       capsys, no_runner):
    code = train_api.main([
        LINEAR_DEMO, '--work-dir', str(tmp_path), '--cfg-options',
        f'model.backbone.init_cfg.checkpoint={truncated}',
        *_data(osp.join(demo_data, 'imagenet'))[:2]
    ])
    assert code == 2
    assert _one_line(capsys).startswith(f'error: checkpoint {truncated} (')


def test_truncated_checkpoint_resume(truncated, demo_data, tmp_path, capsys):
    code = train_api.main([
        TINY_CLS, '--work-dir', str(tmp_path), '--resume', truncated,
        '--cfg-options', *_data(osp.join(demo_data, 'imagenet'))
    ])
    assert code == 2
    assert _one_line(capsys).startswith(f'error: checkpoint {truncated} (')


# --- bytes changed inside a checkpoint (same size, zip still readable) ------
NARROW = osp.join(REPO_ROOT, 'tests', 'data', 'configs', 'narrow_bcssl.py')


def overwrite_inside_largest_record(path, n=4096, seed=0):
    """Overwrite ``n`` random bytes in the middle of the largest record (a
    tensor) of the torch zip file ``path``; return the record's name."""
    with zipfile.ZipFile(path) as archive:
        info = max(archive.infolist(), key=lambda i: i.file_size)
    assert info.file_size > 2 * n
    size = osp.getsize(path)
    with open(path, 'r+b') as f:
        f.seek(info.header_offset + 26)  # the local header's name/extra
        name_len, extra_len = struct.unpack('<HH', f.read(4))
        data = info.header_offset + 30 + name_len + extra_len
        f.seek(data + (info.file_size - n) // 2)
        f.write(np.random.RandomState(seed).bytes(n))
    assert osp.getsize(path) == size
    with zipfile.ZipFile(path) as archive:  # still a readable zip
        assert info.filename in archive.namelist()
    return info.filename


@pytest.fixture(scope='module')
def bit_rotten(tmp_path_factory):
    """A real backbone checkpoint of the narrow test config with 4 KiB of
    random bytes inside its largest tensor record: (path, record)."""
    from mmbcssl.apis import init_backbone
    path = str(tmp_path_factory.mktemp('rotten') / 'bb.pth')
    model = init_backbone(NARROW, None, seed=0)
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in
                               model['backbone'].state_dict().items()}},
               path)
    return path, overwrite_inside_largest_record(path)


def _knn_eval(checkpoint, demo_data, out) -> int:
    """tools/knn_eval.py of the narrow BC-SSL with ``checkpoint`` on the
    demo data at 32 px."""
    return knn_eval.main([NARROW, '--data-root',
                          osp.join(demo_data, 'imagenet'), '--checkpoint',
                          checkpoint, '--img-size', '32', '--resize', '36',
                          '--num-workers', '0', '--out', str(out)])


def test_corrupt_bytes_in_a_checkpoint_knn_eval(bit_rotten, demo_data,
                                                tmp_path, capsys):
    path, record = bit_rotten
    out = tmp_path / 'knn.json'
    code = _knn_eval(path, demo_data, out)
    err = _one_line(capsys)
    assert code == 2
    assert err.startswith(f'error: checkpoint {path} (')
    assert f'is corrupt: its record {record!r} fails the zip CRC' in err
    assert 're-download or re-create it' in err
    assert not out.exists()


def test_corrupt_bytes_in_a_checkpoint_convert(bit_rotten, tmp_path, capsys):
    path, record = bit_rotten
    out = str(tmp_path / 'converted.pth')
    assert convert.main([path, out, '--config', NARROW]) == 2
    err = _one_line(capsys)
    assert err.startswith(f'error: checkpoint {path} (')
    assert repr(record) in err and 'CRC' in err
    assert not osp.exists(out)


def test_corrupt_bytes_in_a_checkpoint_load_backbone_weights(bit_rotten):
    from mmbcssl.fileio import CorruptCheckpointError
    path, record = bit_rotten
    backbone = MODELS.build(dict(type='BCSSL', arch=TINY_ARCH,
                                 kernel_size=9))
    with pytest.raises(CorruptCheckpointError, match=record):
        load_backbone_weights(backbone, path)


def test_nan_weights_are_refused_by_knn_eval(demo_data, tmp_path, capsys):
    """A sound file (every CRC right) whose weights are NaN: refused when
    loaded into the backbone, naming the key; no result is written."""
    from mmbcssl.apis import init_backbone
    path = str(tmp_path / 'nan.pth')
    state = {f'backbone.{k}': v for k, v in
             init_backbone(NARROW, None)['backbone'].state_dict().items()}
    key = next(k for k, v in state.items() if v.is_floating_point())
    state[key] = torch.full_like(state[key], float('nan'))
    torch.save({'state_dict': state}, path)
    out = tmp_path / 'knn.json'
    code = _knn_eval(path, demo_data, out)
    err = _one_line(capsys)
    assert code == 2
    assert err.startswith(f'error: {path}: weights {key!r} holds '
                          f'{state[key].numel()} NaN/Inf value(s)')
    assert not out.exists()


# --- labels out of range -----------------------------------------------------
def test_label_out_of_range_names_file_and_line(demo_data, tmp_path, capsys,
                                                no_runner):
    root = osp.join(demo_data, 'imagenet')
    with open(osp.join(root, 'meta', 'train.txt')) as f:
        lines = f.read().splitlines()
    lines[2] = lines[2].rsplit(' ', 1)[0] + ' 15'
    ann = str(tmp_path / 'train.txt')
    with open(ann, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    code = train_api.main([
        TINY_CLS, '--work-dir', str(tmp_path / 'w'), '--cfg-options',
        *_data(root), f'train_dataloader.dataset.ann_file={ann}'
    ])
    assert code == 2
    err = _one_line(capsys)
    assert f'{ann} line 3' in err and 'has label 15' in err
    assert 'model.head.num_classes is 10 (labels 0-9)' in err
    assert 'model.head.num_classes=16' in err


# --- bad config values and misspelt keys ---------------------------------
@pytest.mark.parametrize('option, message', [
    ('model.backbone.kernel_size=8', 'kernel_size must be an odd integer '
     '(3, 5, 7, 9, 15, ...), got 8'),
    ('model.backbone.kernel_size=7.5', 'got 7.5'),
    ('model.backbone.arch=tinyy', "arch must be one of"),
    ('train_dataloader.batch_size=0', 'train_dataloader.batch_size must be '
     'a positive integer'),
    ('train_dataloader.batch_size=-4', 'got -4'),
    ('trian_cfg.max_epochs=1', "no top-level key 'trian_cfg' and nothing "
     "reads one (did you mean 'train_cfg'?)"),
    ('default_hooks.checkpoint.intervl=2', "default_hooks.checkpoint has no "
     "key 'intervl'"),
    ('train_cfg.max_epoch=1', "(did you mean 'max_epochs'?)"),
    ('model.backbone.kernal_size=7', "(did you mean 'kernel_size'?)"),
])
def test_bad_config_fails_in_one_line_before_building(
        option, message, demo_data, tmp_path, capsys, no_runner):
    code = train_api.main([
        DINO_DEMO, '--work-dir', str(tmp_path), '--cfg-options', option,
        f'train_dataloader.dataset.data_root={demo_data}/imagenet'
    ])
    assert code == 2
    assert message in _one_line(capsys)


def test_unknown_arch_of_an_mmpretrain_backbone(capsys, demo_data, tmp_path,
                                                no_runner):
    swin = osp.join(REPO_ROOT, 'configs', 'dino', 'swin-t_100e.py')
    code = train_api.main([
        swin, '--work-dir', str(tmp_path), '--cfg-options',
        'model.backbone.arch=tinyy',
        f'train_dataloader.dataset.data_root={demo_data}/imagenet'
    ])
    assert code == 2
    err = _one_line(capsys)
    assert "unknown arch 'tinyy' (did you mean 'tiny'?)" in err


def test_new_keys_that_components_read_are_accepted(demo_data, tmp_path,
                                                    monkeypatch):
    """The check is not a list of today's keys: an argument the component
    takes passes, also where the config does not set it yet."""
    built = []

    class Runner:

        def __init__(self, cfg):
            built.append(cfg)
            # what tools/train.py's free-space check reads
            self.cfg, self.work_dir = cfg, str(tmp_path)
            self.model = torch.nn.Linear(1, 1)

        def train(self):
            pass

    monkeypatch.setattr(train_api, 'build_runner', Runner)
    assert train_api.main([
        DINO_DEMO, '--work-dir', str(tmp_path), '--cfg-options',
        f'train_dataloader.dataset.data_root={demo_data}/imagenet',
        'train_dataloader.dataset.indices=8',
        'optim_wrapper.nonfinite_loss=skip',
        'default_hooks.checkpoint.save_best=auto',
        'model.backbone.init_cfg.type=Pretrained',
        'find_unused_parameters=True'
    ]) == 0
    cfg = built[0]
    assert cfg.train_dataloader.dataset.indices == 8
    assert cfg.optim_wrapper.nonfinite_loss == 'skip'
    assert cfg.find_unused_parameters is True


# --- overrides that would change nothing -------------------------------------
def test_config_variable_override_names_the_keys_that_hold_it(
        demo_data, tmp_path, capsys, no_runner):
    """``data_root`` is a variable of the config file: its value was copied
    into the data sets when the file was read; setting it would train on
    the old data."""
    code = train_api.main([
        LINEAR_DEMO, '--work-dir', str(tmp_path), '--cfg-options',
        f'data_root={demo_data}/imagenet'
    ])
    assert code == 2
    err = _one_line(capsys)
    assert err.startswith("error: --cfg-options data_root: 'data_root' is a "
                          'variable of the config file')
    assert 'setting it changes nothing' in err
    assert err.endswith("Set the keys that hold its value "
                        "'data/demo/imagenet' instead: "
                        'train_dataloader.dataset.data_root, '
                        'val_dataloader.dataset.data_root, '
                        'test_dataloader.dataset.data_root')


def test_max_epochs_override_names_loop_and_scheduler(demo_data, tmp_path,
                                                      capsys, no_runner):
    code = train_api.main([
        LINEAR_DEMO, '--work-dir', str(tmp_path), '--cfg-options',
        'max_epochs=1', *_data(osp.join(demo_data, 'imagenet'))
    ])
    assert code == 2
    err = _one_line(capsys)
    assert "'max_epochs' is a variable of the config file" in err
    assert err.endswith('Set the keys that hold its value 20 instead: '
                        'param_scheduler.0.T_max, param_scheduler.0.end, '
                        'train_cfg.max_epochs')


def test_override_inside_a_config_variable(demo_data, tmp_path, capsys,
                                           no_runner):
    """A key inside a copied variable: the copies' same key is named."""
    code = train_api.main([
        LINEAR_DEMO, '--work-dir', str(tmp_path), '--cfg-options',
        'demo_train_pipeline.1.scale=32', *_data(osp.join(demo_data,
                                                          'imagenet'))
    ])
    assert code == 2
    assert _one_line(capsys).endswith(
        ': train_dataloader.dataset.pipeline.1.scale')


# --- a wrong key of a type-less loop config, a config that is not Python -----
@pytest.mark.parametrize('option, message', [
    ('train_cfg.epochs=1', "--cfg-options train_cfg.epochs: train_cfg has no "
     "key 'epochs' and EpochBasedTrainLoop takes no such argument; it takes "
     'max_epochs, val_begin, val_interval, dynamic_intervals, by_epoch'),
    ('val_cfg.every=2', "val_cfg has no key 'every' and ValLoop takes no such "
     'argument; it takes fp16'),
    ("param_scheduler=[dict(type='ConstantLR') dict(type='LinearLR')]",
     "--cfg-options param_scheduler: \"dict(type='ConstantLR')dict(type="
     "'Linear\" would be a string, not a dict"),
])
def test_wrong_loop_key_or_list_of_dicts_option(option, message, demo_data,
                                                tmp_path, capsys, no_runner):
    code = train_api.main([
        LINEAR_DEMO, '--work-dir', str(tmp_path), '--cfg-options', option,
        *_data(osp.join(demo_data, 'imagenet'))
    ])
    assert code == 2
    assert message in _one_line(capsys)


def test_wrong_loop_key_in_the_config_file(demo_data, tmp_path, capsys,
                                           no_runner):
    config = tmp_path / 'iters.py'
    config.write_text(f'_base_ = [{TINY_CLS!r}]\n'
                      'train_cfg = dict(iters=4)\n')
    code = train_api.main([str(config), '--work-dir', str(tmp_path / 'w'),
                           '--cfg-options',
                           *_data(osp.join(demo_data, 'imagenet'))])
    assert code == 2
    assert _one_line(capsys) == (
        "error: train_cfg has no key 'iters': IterBasedTrainLoop takes "
        'max_iters, val_begin, val_interval, dynamic_intervals, by_epoch')


@pytest.mark.parametrize('in_base', [False, True])
def test_list_of_dicts_without_its_comma_in_a_config_file(
        in_base, tmp_path, capsys, no_runner):
    broken = tmp_path / 'schedule.py'
    broken.write_text(
        f'_base_ = [{TINY_CLS!r}]\n'
        'param_scheduler = [\n'
        "    dict(type='LinearLR', start_factor=0.1, by_epoch=False, end=1)\n"
        "    dict(type='ConstantLR', factor=1.0, by_epoch=False, begin=1)\n"
        ']\n')
    config = broken
    if in_base:
        config = tmp_path / 'child.py'
        config.write_text("_base_ = ['./schedule.py']\n")
    code = train_api.main([str(config), '--work-dir', str(tmp_path / 'w')])
    assert code == 2
    assert _one_line(capsys).startswith(
        f'error: config file {broken} line 3: invalid syntax. Perhaps you '
        "forgot a comma? (dict(type='LinearLR'")


# --- optimizer numbers torch refuses -----------------------------------------
@pytest.mark.parametrize('option, message', [
    ('optim_wrapper.optimizer.lr=-0.01',
     'optim_wrapper.optimizer.lr must be >= 0, got -0.01'),
    ('optim_wrapper.optimizer.weight_decay=-1e-4',
     'optim_wrapper.optimizer.weight_decay must be >= 0, got -0.0001'),
    ('optim_wrapper.optimizer.momentum=1.0',
     'optim_wrapper.optimizer.momentum must be in [0, 1) (e.g. 0.9), got '
     '1.0'),
    ('optim_wrapper.optimizer.momentum=-0.9',
     'optim_wrapper.optimizer.momentum must be in [0, 1) (e.g. 0.9), got '
     '-0.9'),
])
def test_bad_optimizer_numbers(option, message, demo_data, tmp_path, capsys,
                               no_runner):
    code = train_api.main([
        TINY_CLS, '--work-dir', str(tmp_path), '--cfg-options', option,
        *_data(osp.join(demo_data, 'imagenet'))
    ])
    assert code == 2
    assert _one_line(capsys) == f'error: {message}'


def test_bad_adam_betas(demo_data, tmp_path, capsys, no_runner):
    code = train_api.main([
        DINO_DEMO, '--work-dir', str(tmp_path), '--cfg-options',
        'optim_wrapper.optimizer.betas=(0.9,1.5)',
        f'train_dataloader.dataset.data_root={demo_data}/imagenet'
    ])
    assert code == 2
    assert _one_line(capsys) == (
        'error: optim_wrapper.optimizer.betas must each be in [0, 1) (e.g. '
        '(0.9, 0.999)), got (0.9, 1.5)')


# --- too little free space for a checkpoint ----------------------------------
def test_too_little_free_space_is_refused_before_training(
        demo_data, tmp_path, unshare_tmpfs):
    """A real 256 KiB file system as the work dir: a checkpoint of the tiny
    classifier (about 1.5 MB) cannot fit; refused before the first
    iteration, not at the first save."""
    disk, out = tmp_path / 'disk', tmp_path / 'after'
    disk.mkdir()
    script = (f'mount -t tmpfs -o size=256k tmpfs {disk} && '
              f'{sys.executable} {REPO_ROOT}/tools/train.py {TINY_CLS} '
              f'--work-dir {disk} --cfg-options '
              f'{" ".join(_data(osp.join(demo_data, "imagenet")))}; '
              f'rc=$?; mkdir -p {out} && cp -a {disk}/. {out}/; exit $rc')
    proc = subprocess.run([*unshare_tmpfs, 'sh', '-c', script],
                          capture_output=True, text=True, cwd=REPO_ROOT,
                          env=dict(os.environ, PYTHONPATH=REPO_ROOT),
                          timeout=300)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert 'Traceback' not in proc.stderr
    err = proc.stderr.strip().splitlines()[-1]
    match = re.fullmatch(
        rf'error: not enough free space to save a checkpoint in {disk}: '
        r'([\d.]+) KiB free, a checkpoint of this model and optimizer needs '
        r'about ([\d.]+) MiB \(estimated\); free space or point --work-dir '
        r'at a bigger disk, then run again', err)
    assert match, err
    assert float(match.group(1)) <= 256 < 1024 * float(match.group(2))
    assert 'Iter(train)' not in proc.stdout + proc.stderr
    assert not [f for f in os.listdir(out) if f.endswith('.pth')]
