"""One column schema: a column declared once appears in the suite's
report, its summary, the robustness report and the demo's table."""
import json

from mmbcssl.cli import demo
from mmbcssl.evaluation.columns import COLUMNS, Column, table_columns
from mmbcssl.evaluation.robustness import (BENCHMARK_CORRUPTIONS,
                                           SEVERITIES, corruption_errors)
from mmbcssl.suite.report import (imagenet_c_table, load_run, markdown,
                                  robustness_markdown, summary_lines)


def _work_dir(root, results):
    (root / 'results').mkdir(parents=True)
    (root / 'suite.json').write_text(json.dumps(dict(
        config='tests/data/configs/tiny_classifier.py', checkpoint=None,
        checkpoint_sha256=None, pretraining=dict(weights='random init'))))
    for name, result in results.items():
        (root / 'results' / f'{name}.json').write_text(json.dumps(result))
    return str(root)


def test_a_column_declared_once_is_in_every_table(tmp_path, monkeypatch):
    column = Column('x_top1', 'IN-X top-1', 'the X protocol',
                    'robustness.x', 'x/score', scale=100.,
                    tables=('robustness', 'robustness_report'),
                    demo_line='IN-X top-1 (demo)')
    monkeypatch.setitem(COLUMNS, column.id, column)
    result = dict(status='ok', metrics={'x/score': 0.4})
    work = _work_dir(tmp_path / 'suite', {'robustness.x': result})
    # the suite's report: its table, its value, its protocol
    row = load_run(work)
    assert row.values == {'x_top1': 40.0}
    text = markdown([row])
    assert '| Model | IN-X top-1 |' in text
    assert '| 40.00 |' in text
    assert '- IN-X top-1: the X protocol' in text
    # the suite's summary on screen
    (line, ) = [s for s in summary_lines({'robustness.x': result})
                if 'robustness.x' in s]
    assert 'x/score 0.40' in line
    # the demo's table
    (line, ) = [s for s in demo.results_table(str(tmp_path))
                if 'IN-X top-1 (demo)' in s]
    assert line.endswith('40.0')
    # the robustness report (tools/robustness_report.py: a suite run, its
    # row as load_run's)
    text = robustness_markdown('ours', row.values, {}, demo=True)
    header = next(s for s in text.splitlines() if s.startswith('| Model'))
    assert header == '| Model | IN-X top-1 |'


def test_the_tables_show_the_columns_they_did():
    """The tables' columns, in order, as the report has always shown."""
    assert table_columns('knn_linear') == (
        'knn_top1', 'knn_random_init', 'linear_top1', 'linear_top1_best',
        'transfer_mean')
    assert table_columns('dense') == ('coco_box_ap', 'coco_mask_ap',
                                      'ade20k_miou')
    assert table_columns('cost') == ('params_m', 'flops_g', 'throughput',
                                     'knn_top1', 'linear_top1',
                                     'linear_top1_best')


def test_one_imagenet_c_table_in_both_reports(tmp_path):
    errors = {c: {s: 0.1 * s for s in SEVERITIES}
              for c in BENCHMARK_CORRUPTIONS}
    metrics = {f'imagenet-c/{k}': v
               for k, v in corruption_errors(errors, 0.25).items()}
    table = imagenet_c_table(metrics)
    assert table[0] == '- mCE (AlexNet-normalised, 15 corruptions): ' \
        f'{metrics["imagenet-c/mCE"]:.2f}'
    # gaussian noise: 10 % at severity 1 ... 50 % at 5, mean 30 %
    assert '| gaussian_noise | 10.00 | 20.00 | 30.00 | 40.00 | 50.00 | ' \
        '30.00 |' in '\n'.join(table)
    suite = load_run(_work_dir(tmp_path, {'robustness.c': dict(
        status='ok', metrics=metrics)}))
    assert '\n'.join(table) in markdown([suite])
    text = robustness_markdown(
        'ours', {}, {'robustness.c': dict(metrics=metrics)}, demo=True)
    assert '\n'.join(table) in text
