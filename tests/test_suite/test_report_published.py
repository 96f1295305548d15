"""Which published rows the report sets beside a run: only those made the
same way. Numbers measured on a released checkpoint (the paper's 300-epoch
ResNet-50 row is DINO's released ``dino_resnet50_pretrain.pth``) sit beside
that file converted, never beside a run of the config; the others beside a
run of their own config, never beside a converted file. The protocol list
names how each row's weights were made and the recipe variant. A published
cell measured another way than the measured cells beside it (data set,
images, image size, transform, k-NN k and T) is daggered with the fields;
the "Demo data" banner follows the data the results came from."""
import json
import os.path as osp
from collections import OrderedDict

import pytest
import torch

from mmbcssl.converters import ConversionResult, save_backbone
from mmbcssl.evaluation.fingerprint import (checkpoint_record,
                                            converted_from,
                                            pretraining_record)
from mmbcssl.evaluation.paper_results import (load_entries,
                                              published_protocols)
from mmbcssl.suite.report import (Row, markdown, published_rows,
                                  robustness_markdown, write_report)
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


# The k-NN protocol record of a knn_eval.py result at the demo's 64 px and
# at the paper's 224 px (transform_record of FeatureTransform's pipeline).
def _knn_protocol(resize, crop, val):
    resize_step = ('ResizeEdge({"backend": "pillow", "edge": "short", '
                   f'"interpolation": "bicubic", "scale": {resize}}})')
    return dict(task='knn', dataset='folder imagenet',
                transform=[resize_step, f'CenterCrop({crop})'], ks=[10, 20],
                temperature=0.07, normalisation='L2', bank_dtype='float16',
                class_restriction='none',
                images=dict(train=10 * val, val=val), skipped_images=0)


def _suite_work_dir(root, config, results):
    """A suite work dir as run_suite.py leaves it: suite.json naming the
    config and a run of this code, and ``results`` (name -> (data root,
    protocol, metrics)) as result files with their fingerprints."""
    (root / 'results').mkdir(parents=True)
    (root / 'suite.json').write_text(json.dumps(dict(
        config=config, checkpoint='/runs/backbone_teacher.pth',
        checkpoint_sha256='c' * 64,
        pretraining=dict(config=config, weights='a run of this code'))))
    for name, (data_root, protocol, metrics) in results.items():
        (root / 'results' / f'{name}.json').write_text(json.dumps(dict(
            status='ok', name=name, metrics=metrics,
            fingerprint=dict(
                protocol=protocol, protocol_id=name,
                checkpoint=dict(file='/runs/backbone_teacher.pth',
                                sha256='c' * 64, weights='teacher'),
                model=dict(backbone="BCSSL(arch=tiny, kernel_size=9, "
                           "dw_norm_cfg={'type': 'BN'})"),
                run=dict(seed=0, data_root=data_root)),
            request=dict(config=config, checkpoint_sha256='c' * 64))))
    return str(root)


DINO_100E = 'configs/dino/bcssl-t_9x9_100e.py'


def _report(tmp_path, work_dirs):
    out = tmp_path / 'out'
    write_report(work_dirs, str(out), formats=('md', 'csv'))
    return (out / 'report.md').read_text(), out


def test_a_published_number_beside_a_demo_cell_is_flagged(tmp_path,
                                                          demo_data,
                                                          monkeypatch):
    """The paper's config run on the demo data (64 px, 40 val images): the
    published k-NN 70.3 (ImageNet-1k val, 224 px) is daggered with the
    fields that differ, in the Markdown and the CSV, and left out of the
    accuracy-against-kernel figure; the published ImageNet-R 1000-way
    number, beside our 200-class cell only, is flagged for the demo data
    beside it."""
    import matplotlib.axes
    plotted = []
    plot = matplotlib.axes.Axes.errorbar

    def spy(ax, *args, **kwargs):
        plotted.append((ax.get_title(), kwargs.get('label'), args[:2]))
        return plot(ax, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, 'errorbar', spy)
    r_protocol = dict(task='classification', dataset='ImageNetSubset',
                      transform=_knn_protocol(73, 64, 1)['transform'],
                      images=20, class_restriction='logits restricted to '
                      'the 7 classes of the set', class_list='imagenet-r')
    work = _suite_work_dir(tmp_path / 'run', DINO_100E, {
        'knn': (f'{demo_data}/imagenet', _knn_protocol(73, 64, 40),
                {'knn/k10_top1': 30.0, 'knn/k20_top1': 31.0}),
        'robustness.r': (f'{demo_data}/imagenet-r', r_protocol,
                         {'accuracy/top1': 20.0})})
    text, out = _report(tmp_path, [work])
    lines = [s for s in text.splitlines()
             if s.startswith('| bcssl-t_9x9_100e (published)') and
             '70.30' in s]
    assert lines and all('70.30†' in s for s in lines)
    note = next(s for s in text.splitlines()
                if s.startswith('† bcssl-t_9x9_100e (published), k-NN '
                                'top-1: '))
    for field in ('data ImageNet-1k val vs demo imagenet',
                  'images 50000 vs 40', 'img_size 224 vs 64',
                  'transform resize 256 (bicubic) + centre crop 224 vs '
                  'resize 73 (bicubic) + centre crop 64'):
        assert field in note
    # our own cell is not flagged: it is the column's measured protocol
    assert '31.00†' not in text
    assert '22.79†' in text  # IN-R top-1 (1000-way), published
    assert ('IN-R top-1 (1000-way): published with another protocol than '
            'the measured cells beside it (data ImageNet-R vs demo data)'
            ) in text
    # the protocol list gives the published numbers' protocol
    assert ('Published numbers: data ImageNet-1k val, images 50000, '
            'img_size 224, transform resize 256 (bicubic) + centre crop 224, '
            'k 20, temperature 0.07') in text
    csv_text = (out / 'k_nn_and_linear_probe.csv').read_text()
    assert '70.30†' in csv_text
    # the figure: the published points of another protocol are left out,
    # which leaves our one kernel size, and one point draws no panel
    assert not (out / 'accuracy_vs_kernel.png').exists()
    assert plotted == []


def test_a_published_number_beside_a_real_224px_cell_is_not_flagged(
        tmp_path):
    """The same config measured the paper's way (224 px, 50000 val
    images, on data that is not the demo's): the published k-NN sits
    beside it without a dagger and no banner says demo data."""
    data = tmp_path / 'imagenet'
    (data / 'val').mkdir(parents=True)
    work = _suite_work_dir(tmp_path / 'run', DINO_100E, {
        'knn': (str(data), _knn_protocol(256, 224, 50000),
                {'knn/k10_top1': 69.0, 'knn/k20_top1': 70.1})})
    text, _ = _report(tmp_path, [work])
    assert '| 70.30 |' in text and '70.30†' not in text
    assert '**Demo data' not in text


def _on_demo(tmp_path, demo_data):
    return _suite_work_dir(tmp_path / 'paper_config', DINO_100E, {
        'knn': (f'{demo_data}/imagenet', _knn_protocol(73, 64, 40),
                {'knn/k20_top1': 31.0})})


def _demo_named_on_real_data(tmp_path):
    real = tmp_path / 'imagenet'
    (real / 'val').mkdir(parents=True)
    return _suite_work_dir(
        tmp_path / 'demo_config', 'configs/dino/bcssl-t_9x9_100e_demo.py',
        {'knn': (str(real), _knn_protocol(73, 64, 40),
                 {'knn/k20_top1': 31.0})})


def test_a_paper_config_run_on_demo_data_gets_the_demo_banner(tmp_path,
                                                              demo_data):
    """A config without "demo" in its name run on the demo data (its data
    root holds the demo manifest): the banner, naming the demo data."""
    text, _ = _report(tmp_path, [_on_demo(tmp_path, demo_data)])
    banner = next(s for s in text.splitlines() if s.startswith('**Demo'))
    assert f'({osp.join(demo_data, "imagenet")})' in banner


def test_a_demo_named_config_run_on_other_data_gets_no_banner(
        tmp_path, demo_data):
    """A config called a demo run on data that is not the demo's: no
    banner; beside a run on demo data, the banner names that run only."""
    demo_named = _demo_named_on_real_data(tmp_path)
    text, _ = _report(tmp_path / 'a', [demo_named])
    assert '**Demo data' not in text
    text, _ = _report(tmp_path / 'b', [_on_demo(tmp_path, demo_data),
                                       demo_named])
    banner = next(s for s in text.splitlines() if s.startswith('**Demo'))
    assert banner.startswith('**Demo data** in the rows of '
                             'bcssl-t_9x9_100e @ cccccccc.')


def test_a_metafile_entry_overrides_its_columns_protocol(tmp_path):
    """Protocol Settings of a metafile result replace the column's fields
    (a paper that measured otherwise); a field the record lacks is
    refused in one line naming the fields it has."""
    (tmp_path / 'model-index.yml').write_text('Import:\n- m.yml\n')
    result = ('Models:\n- Name: x\n  Config: configs/dino/x.py\n'
              '  Results:\n  - Task: k-NN\n    Dataset: ImageNet-1k\n'
              '    Metrics:\n      Top 1 Accuracy: 60.0\n'
              '    Protocol: knn_top1\n    Source: a paper\n'
              '    Protocol Settings:\n      {}\n')
    (tmp_path / 'm.yml').write_text(result.format('temperature: 0.1'))
    (entry, ) = load_entries(str(tmp_path))
    assert entry.protocols['knn_top1'] == dict(
        data='ImageNet-1k val', images=50000, img_size=224,
        transform='resize 256 (bicubic) + centre crop 224', k=20,
        temperature=0.1)
    assert published_protocols([entry], 'configs/dino/x.py')[
        'knn_top1']['temperature'] == 0.1
    (tmp_path / 'm.yml').write_text(result.format('crop: 256'))
    with pytest.raises(ValueError, match='Protocol Settings crop are not '
                       'fields of a knn_top1 record; it has data, images'):
        load_entries(str(tmp_path))


def _r_1000way(data_root, images):
    """An ImageNet-R 1000-way result (tools/test.py's fingerprint) at the
    paper's transform."""
    transform = _knn_protocol(256, 224, 1)['transform']
    return dict(status='ok', metrics={'accuracy/top1': 25.0},
                fingerprint=dict(
                    protocol=dict(task='classification',
                                  dataset='ImageNetSubset',
                                  transform=transform, images=images,
                                  class_restriction='argmax over all the '
                                  "model's classes",
                                  class_list='imagenet-r'),
                    protocol_id='r', run=dict(data_root=data_root)))


def test_the_robustness_report_flags_published_cells_and_demo_data(
        tmp_path, demo_data):
    """tools/robustness_report.py's table: a probe measured on 20 images
    of an ImageNet-R folder gets the published 1000-way number daggered
    (images 30000 vs 20); a run on the demo data without --demo gets the
    banner and no published row."""
    subset = tmp_path / 'imagenet-r'
    subset.mkdir()
    text = robustness_markdown('ours', {'r_top1_1000way': 25.0}, {
        'robustness.r_1000way': _r_1000way(str(subset), 20)})
    assert '| 22.79† |' in text.replace('| – ', '')
    assert ('IN-R top-1 (1000-way): published with another protocol than '
            'the measured cells beside it (images 30000 vs 20)') in text
    text = robustness_markdown('ours', {'r_top1_1000way': 25.0}, {
        'robustness.r_1000way': _r_1000way(f'{demo_data}/imagenet-r', 42)})
    assert '**Demo data**' in text and '(published)' not in text


def test_published_flops_at_another_input_size_are_flagged_params_not(
        tmp_path):
    """A complexity result counted at 32 x 32: the published FLOPs (at
    224) are daggered, the published parameters (no input size) not."""
    work = _suite_work_dir(tmp_path / 'run', DINO_100E, {'complexity': (
        None, dict(task='complexity', img_size=32,
                   counted='multiply-adds (mmengine FlopAnalyzer), with a '
                   '1000-class linear head'),
        {'params_m': 28.8, 'flops_g': 0.1})})
    text, _ = _report(tmp_path, [work])
    (line, ) = [s for s in text.splitlines()
                if s.startswith('| bcssl-t_9x9_100e (published)') and
                '| 29.00 |' in s]
    assert '| 29.00 | 4.50† |' in line
    assert ('FLOPs (G): published with another protocol than the measured '
            'cells beside it (img_size 224 vs 32)') in text
    assert '29.00†' not in text
