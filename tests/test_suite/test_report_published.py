"""Which published rows the report sets beside a run: only those made the
same way. Numbers measured on a released checkpoint (the paper's 300-epoch
ResNet-50 row is DINO's released ``dino_resnet50_pretrain.pth``) sit beside
that file converted, never beside a run of the config; the others beside a
run of their own config, never beside a converted file. The protocol list
names how each row's weights were made and the recipe variant."""
import os.path as osp
from collections import OrderedDict

import pytest
import torch

from mmbcssl.converters import ConversionResult, save_backbone
from mmbcssl.evaluation.fingerprint import (checkpoint_record,
                                            converted_from,
                                            pretraining_record)
from mmbcssl.evaluation.paper_results import load_entries
from mmbcssl.suite.report import Row, markdown, published_rows
from tests.conftest import REPO_ROOT

DINO = osp.join(REPO_ROOT, 'configs', 'dino')
RESNET50_300E = osp.join(DINO, 'resnet50_300e.py')


def _converted(tmp_path, source_name: str) -> str:
    """A file written by the converters, as convert.py writes it from the
    published file ``source_name``."""
    result = ConversionResult(
        OrderedDict(conv1=torch.zeros(2)), dict(type='ResNet', depth=50),
        None, 'dino', None, str(tmp_path / 'downloads' / source_name))
    out = str(tmp_path / f'{source_name}.converted.pth')
    save_backbone(result, out)
    return out


def _trained(tmp_path) -> str:
    """A teacher backbone extracted from a pre-training run of this code
    (extract_backbone.py's layout)."""
    out = str(tmp_path / 'backbone_teacher.pth')
    torch.save(dict(state_dict={'backbone.conv1': torch.zeros(2)},
                    meta=dict(source='/runs/epoch_300.pth', part='teacher',
                              epoch=300)), out)
    return out


def _run(config: str, checkpoint) -> Row:
    rel = osp.relpath(config, REPO_ROOT)
    weights = osp.basename(checkpoint) if checkpoint else 'random init'
    return Row(f'{osp.basename(config)} @ {weights}', {'knn_top1': 50.0},
               config=rel, pretraining=pretraining_record(config, checkpoint))


def test_a_converted_file_names_its_published_source(tmp_path):
    conv = _converted(tmp_path, 'dino_resnet50_pretrain.pth')
    assert converted_from(conv) == 'dino_resnet50_pretrain.pth'
    record = checkpoint_record(conv)
    assert record['converted_from'] == 'dino_resnet50_pretrain.pth'
    # a run of this code, extracted or not, is not a converted file
    trained = _trained(tmp_path)
    assert converted_from(trained) is None
    assert 'converted_from' not in checkpoint_record(trained)
    assert checkpoint_record(trained)['weights'] == 'teacher'
    assert pretraining_record(RESNET50_300E, conv) == dict(
        config='configs/dino/resnet50_300e.py',
        weights='converted from dino_resnet50_pretrain.pth')


def test_the_resnet50_300e_row_belongs_to_dinos_released_checkpoint(
        tmp_path):
    entry = next(e for e in load_entries()
                 if e.config == 'configs/dino/resnet50_300e.py')
    assert entry.published_weights == 'dino_resnet50_pretrain.pth'
    released = _run(RESNET50_300E,
                    _converted(tmp_path, 'dino_resnet50_pretrain.pth'))
    ours = _run(RESNET50_300E, _trained(tmp_path))
    other = _run(RESNET50_300E, _converted(tmp_path, 'checkpoint.pth'))
    assert published_rows([ours]) == []
    assert published_rows([other]) == []
    (row, ) = published_rows([ours, released, other])
    # the k-NN of the metafile entry, the linear probe of the entry that
    # starts from it
    assert row.values['knn_top1'] == 67.5
    assert row.values['linear_top1_best'] == 75.3
    assert 'dino_resnet50_pretrain.pth' in row.source
    text = markdown([ours, released, row])
    protocols = text[text.index('## Protocols'):]
    assert ('converted from dino_resnet50_pretrain.pth '
            '(configs/dino/resnet50_300e.py)') in protocols
    assert 'measured on the released dino_resnet50_pretrain.pth' in protocols


def test_a_recipe_row_sits_beside_a_run_of_its_config_only(tmp_path):
    config = osp.join(DINO, 'bcssl-t_9x9_100e.py')
    trained = _run(config, _trained(tmp_path))
    assert trained.pretraining['variant'] == []
    (row, ) = published_rows([trained])
    assert row.values['knn_top1'] == 70.3
    # a converted file or random weights were not made that way
    converted = _run(config, _converted(tmp_path, 'checkpoint.pth'))
    assert published_rows([converted]) == []
    assert published_rows([_run(config, None)]) == []


@pytest.mark.parametrize('name, variant', [
    ('bcssl-t_9x9_100e.py', []),
    ('bcssl-t_9x9_300e.py', []),
    ('bcssl-t_9x9_teacher-droppath_100e.py',
     ['teacher_drop_path=True (paper text: False)']),
    ('swin-t_4xb64_100e.py', ['global_batch=256 (paper text: 512)']),
    ('resnet50_300e.py', ['norm_last_layer=True (paper text: False)']),
])
def test_the_protocol_list_names_the_recipe_variant(tmp_path, name,
                                                    variant):
    run = _run(osp.join(DINO, name), _trained(tmp_path))
    record = run.pretraining
    assert record['weights'] == 'a run of this code'
    assert record['variant'] == variant
    epochs = 300 if '300e' in name else 100
    assert record['recipe']['epochs'] == epochs
    assert record['recipe']['teacher_temp'] == (
        '0.04 -> 0.07 over 30 epochs' if epochs == 300 else '0.04')
    text = markdown([run] + published_rows([run]))
    line = next(li for li in text.splitlines()
                if li.startswith(f'  - {run.label}: '))
    assert ('variant: ' + ', '.join(variant) if variant else
            'paper text') in line
    # a variant has no published row of its own: none is shown beside it
    assert ('(published)' in text) == (not variant)
