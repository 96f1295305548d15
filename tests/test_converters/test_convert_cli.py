"""tools/model_converters/convert.py on bad input: one-line errors that say
what is wrong, and no output file unless the conversion is sound."""
import importlib.util
import os.path as osp
import zipfile

import pytest
import timm
import torch

import mmbcssl  # noqa: F401
from mmbcssl.cli import convert
from mmbcssl.converters import FORMATS, ConversionError, get_format
from tests.conftest import REPO_ROOT
from tests.test_converters.sources import load_output

RESNET50 = osp.join(REPO_ROOT, 'configs/_base_/models/resnet50.py')


def _tiny_vit(path, **extra):
    model = timm.models.vision_transformer.VisionTransformer(
        img_size=32, patch_size=8, embed_dim=128, depth=2, num_heads=2,
        num_classes=0)
    sd = dict(model.state_dict(), **extra)
    torch.save(sd, path)
    return sd


def _error(capsys):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith('error: ')
    return err


def test_known_formats():
    assert sorted(FORMATS) == ['convnext', 'dino', 'esvit', 'mmpretrain',
                               'timm']


def test_unknown_format_lists_the_known_ones(tmp_path, capsys):
    src = str(tmp_path / 'vit.pth')
    _tiny_vit(src)
    assert convert.main([src, str(tmp_path / 'o.pth'), '--from',
                         'moco']) == 2
    err = _error(capsys)
    assert "'moco'" in err
    assert 'auto, convnext, dino, esvit, mmpretrain, timm' in err
    with pytest.raises(ConversionError, match='known formats'):
        get_format('moco')


def test_undetectable_keys(tmp_path, capsys):
    src = str(tmp_path / 'other.pth')
    torch.save({'encoder.conv.weight': torch.zeros(1)}, src)
    assert convert.main([src, str(tmp_path / 'o.pth')]) == 2
    err = _error(capsys)
    assert 'encoder.conv.weight' in err and 'known formats' in err


def test_another_architecture_names_differing_keys(tmp_path, capsys):
    src, out = str(tmp_path / 'vit.pth'), str(tmp_path / 'o.pth')
    _tiny_vit(src)
    assert convert.main([src, out, '--config', RESNET50]) == 2
    err = _error(capsys)
    assert 'does not fit ResNet' in err and 'first 10' in err
    listed = err.split('first 10: ')[1].split('; no file')[0]
    assert listed.count(',') == 9 and 'in all' in listed
    assert not osp.exists(out)
    # a layout the chosen format does not know
    assert convert.main([src, out, '--from', 'esvit']) == 2
    assert 'EsViT' in _error(capsys) and not osp.exists(out)


def test_wrong_size_of_the_same_family(tmp_path, capsys):
    """ViT weights of another width against the ViT-S/16 config."""
    src, out = str(tmp_path / 'vit.pth'), str(tmp_path / 'o.pth')
    _tiny_vit(src)
    vit_s = osp.join(REPO_ROOT, 'configs/_base_/models/vit-s16.py')
    assert convert.main([src, out, '--config', vit_s]) == 2
    err = _error(capsys)
    assert 'cls_token: source (1, 1, 128) vs target (1, 1, 384)' in err
    assert not osp.exists(out)


@pytest.mark.parametrize('content', [b'hello, I am a text file\n',
                                     'truncated'])
def test_not_a_checkpoint(tmp_path, capsys, content):
    src = str(tmp_path / 'model.pth')
    if content == 'truncated':
        _tiny_vit(src)
        assert zipfile.is_zipfile(src)
        with open(src, 'rb') as f:
            data = f.read()
        content = data[:len(data) // 2]
    with open(src, 'wb') as f:
        f.write(content)
    out = str(tmp_path / 'o.pth')
    assert convert.main([src, out]) == 2
    err = _error(capsys)
    assert src in err and 'not' in err and not osp.exists(out)


def test_missing_source(tmp_path, capsys):
    assert convert.main([str(tmp_path / 'nope.pth'),
                         str(tmp_path / 'o.pth')]) == 2
    assert 'not found' in _error(capsys)


def test_existing_output_needs_overwrite(tmp_path, capsys):
    src, out = str(tmp_path / 'vit.pth'), str(tmp_path / 'o.pth')
    _tiny_vit(src)
    with open(out, 'w') as f:
        f.write('keep me')
    assert convert.main([src, out]) == 2
    assert '--overwrite' in _error(capsys)
    with open(out) as f:
        assert f.read() == 'keep me'
    assert convert.main([src, out, '--overwrite']) == 0
    assert 'backbone.cls_token' in load_output(out)['state_dict']


def test_nonfinite_weights_are_not_written(tmp_path, capsys):
    """A source whose weights hold NaN (a diverged run): refused before
    anything is written, naming the first bad key."""
    src, out = str(tmp_path / 'vit.pth'), str(tmp_path / 'o.pth')
    sd = _tiny_vit(src)
    sd['blocks.0.attn.qkv.weight'][0, 0] = float('nan')
    torch.save(sd, src)
    assert convert.main([src, out]) == 2
    err = _error(capsys)
    # timm's blocks.0.attn.qkv is mmpretrain's layers.0.attn.qkv
    assert err.startswith(f'error: converted {src}: weights '
                          "'backbone.layers.0.attn.qkv.weight' holds 1 "
                          'NaN/Inf value(s)')
    assert not osp.exists(out)


def test_unmatched_parameters_need_allow_unmatched(tmp_path, capsys):
    src, out = str(tmp_path / 'vit.pth'), str(tmp_path / 'o.pth')
    sd = _tiny_vit(src, **{'blocks.0.ls1.gamma': torch.ones(128)})
    assert convert.main([src, out]) == 2
    err = _error(capsys)
    assert 'blocks.0.ls1.gamma (unexpected)' in err
    assert '--allow-unmatched' in err and not osp.exists(out)

    del sd['blocks.0.ls1.gamma'], sd['norm.weight']
    torch.save(sd, src)
    assert convert.main([src, out]) == 2
    assert 'ln1.weight (missing)' in _error(capsys)
    assert not osp.exists(out)
    assert convert.main([src, out, '--allow-unmatched']) == 0
    summary = capsys.readouterr().out
    assert 'missing: 1 (ln1.weight)' in summary
    state = load_output(out)['state_dict']
    assert 'backbone.ln1.bias' in state and 'backbone.ln1.weight' not in state


def test_weights_flag_on_a_one_network_file(tmp_path, capsys):
    src = str(tmp_path / 'vit.pth')
    _tiny_vit(src)
    assert convert.main([src, str(tmp_path / 'o.pth'), '--weights',
                         'student']) == 2
    assert 'backbone-only' in _error(capsys)


def test_script_is_the_cli():
    """tools/model_converters/convert.py is a thin wrapper of this main()."""
    spec = importlib.util.spec_from_file_location(
        'convert_script',
        osp.join(REPO_ROOT, 'tools', 'model_converters', 'convert.py'))
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.main is convert.main


def test_a_directory_is_named_as_one(tmp_path, capsys):
    # a run's work dir instead of one of its checkpoints
    work = tmp_path / 'work'
    work.mkdir()
    (work / 'epoch_3.pth').write_bytes(b'')
    assert convert.main([str(work), str(tmp_path / 'o.pth')]) == 2
    err = _error(capsys)
    assert 'is a directory' in err and 'epoch_3.pth' in err
    assert 'not found' not in err
