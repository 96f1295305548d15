"""tools/analysis_tools/benchmark_extraction.py on the demo data."""
import json

from mmbcssl.benchmarks import extraction
from tests.conftest import REPO_ROOT

CONFIG = f'{REPO_ROOT}/tests/data/configs/tiny_classifier.py'


def test_extraction_against_the_raw_backbone(demo_data, tmp_path, capsys):
    out = tmp_path / 'e.json'
    args = [
        CONFIG, '--data-root', f'{demo_data}/imagenet', '--split', 'val',
        '--img-size', '32', '--resize', '36', '--batch-size', '16',
        '--workers', '0', '--repeats', '2', '--out', str(out)
    ]
    assert extraction.main(args) == 0
    result = json.loads(out.read_text())
    # the result is kept: a second run refuses before measuring
    assert extraction.main(args) == 2
    assert '--overwrite' in capsys.readouterr().err
    assert json.loads(out.read_text()) == result
    assert result['setting']['images'] == 40
    r = result['results']
    assert r['raw_backbone']['median'] > 0 and r['extraction']['median'] > 0
    assert result['extraction_vs_raw'] == r['extraction']['median'] / r[
        'raw_backbone']['median']


def test_bad_arguments():
    assert extraction.main([CONFIG, '--data-root', 'x', '--workers',
                            '-1']) == 2
