"""The multi-crop pipeline benchmark and its command line
(tools/analysis_tools/benchmark_pipeline.py), on tiny settings (seconds,
not a measurement)."""
import json

import mmcv
import numpy as np
import pytest
import torch
from PIL import Image

from mmbcssl.benchmarks.pipeline import (CropSetting, benchmark_pipelines,
                                         folder_images, format_pipelines,
                                         main, synthetic_images,
                                         time_per_image,
                                         torchvision_dino_augmentation)

TINY = CropSetting('tiny', 16, 8, 2)


def test_synthetic_images_are_reproducible_bgr_uint8():
    a, b = synthetic_images(2, 30, 40, seed=3), synthetic_images(2, 30, 40,
                                                                 seed=3)
    assert [x.shape for x in a] == [(30, 40, 3)] * 2
    assert a[0].dtype == np.uint8
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], a[1])


def test_torchvision_reference_views():
    img = Image.fromarray(synthetic_images(1, 40, 50)[0])
    views = torchvision_dino_augmentation(24, 12, 3, normalize=True)(img)
    assert [tuple(v.shape) for v in views] == [(3, 24, 24)] * 2 + [
        (3, 12, 12)] * 3
    assert views[0].dtype == torch.float32
    pil_views = torchvision_dino_augmentation(24, 12, 0,
                                              normalize=False)(img)
    assert [v.size for v in pil_views] == [(24, 24)] * 2


def test_time_per_image_reports_the_median():
    calls = []
    timing = time_per_image(calls.append, [1, 2, 3], repeats=3, warmup=2)
    assert len(calls) == 3 * (3 + 2)
    assert (timing['images_per_s_min'] <= timing['images_per_s'] <=
            timing['images_per_s_max'])
    assert timing['ms_per_image'] == pytest.approx(
        1000 / timing['images_per_s'])


def test_benchmark_rows_and_table():
    rows = benchmark_pipelines(synthetic_images(2, 30, 40), [TINY],
                               repeats=1, warmup=0)
    assert [r['implementation'] for r in rows] == [
        'DINOMultiCrop', 'DINOMultiCrop + PackInputs', 'torchvision PIL',
        'torchvision + ToTensor/Normalize']
    assert all(r['images_per_s'] > 0 and r['num_views'] == 4 for r in rows)
    table = format_pipelines(rows)
    assert table.count('\n') == 1 + len(rows)
    assert torch.get_num_threads() >= 1  # restored after the single thread


def test_tool_writes_json(tmp_path, capsys):
    out = tmp_path / 'bench.json'
    rc = main(['--num-images', '2', '--image-size', '40x30', '--repeats', '1',
               '--warmup', '0', '--setting', '16,8,2', '--out', str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert '| 16/8, 2+2 | DINOMultiCrop |' in printed
    result = json.loads(out.read_text())
    assert len(result['results']) == 4
    assert result['command'].endswith(f'--out {out}')
    assert result['environment']['numpy'] == np.__version__


def test_tool_on_a_folder_without_torchvision(tmp_path, capsys):
    for i in range(3):
        mmcv.imwrite(np.full((20, 30, 3), 40 * i, np.uint8),
                     str(tmp_path / 'd' / f'{i}.png'))
    assert len(folder_images(str(tmp_path), 2)) == 2
    rc = main(['--folder', str(tmp_path), '--num-images', '3', '--repeats',
               '1', '--warmup', '0', '--setting', '16,8,1',
               '--no-torchvision'])
    assert rc == 0
    printed = capsys.readouterr().out
    assert 'torchvision' not in printed.split('\n', 1)[1]
    with pytest.raises(FileNotFoundError):
        folder_images(str(tmp_path / 'nothing'), 1)
