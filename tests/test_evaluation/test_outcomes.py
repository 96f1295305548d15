import json
import os

import numpy as np
import pytest

from mmbcssl.evaluation.outcomes import (Outcomes, OutcomesError,
                                         dataset_image_keys, image_key,
                                         image_list_sha256, outcomes_path,
                                         read_outcomes, write_outcomes)


def _outcomes(n=50, seed=0):
    rng = np.random.default_rng(seed)
    images = [f'val/c{i % 5}/img_{i}.JPEG' for i in range(n)]
    return Outcomes(images, {'k10': rng.random(n) < .4,
                             'k20': rng.random(n) < .5},
                    meta=dict(ks=[10, 20]))


def test_written_outcomes_read_back_equal_and_bound_to_the_result(tmp_path):
    result = str(tmp_path / 'results' / 'knn.json')
    out = _outcomes()
    record = write_outcomes(result, out)
    assert outcomes_path(result).endswith('results/knn.outcomes.npz')
    assert record['file'] == 'knn.outcomes.npz'
    assert record['images_sha256'] == image_list_sha256(out.images)
    assert record['num_images'] == 50 and record['arrays'] == ['k10', 'k20']
    back = read_outcomes(result, json.loads(json.dumps(record)))
    assert back.images == out.images and back.kind == 'correct'
    assert back.meta == {'ks': [10, 20]}
    for name in out.arrays:
        np.testing.assert_array_equal(back.arrays[name], out.arrays[name])


def test_changed_missing_or_foreign_outcomes_are_refused(tmp_path):
    result = str(tmp_path / 'knn.json')
    record = write_outcomes(result, _outcomes(seed=0))
    # another run's file of the same name: different bytes
    write_outcomes(str(tmp_path / 'other' / 'knn.json'), _outcomes(seed=1))
    os.replace(tmp_path / 'other' / 'knn.outcomes.npz',
               tmp_path / 'knn.outcomes.npz')
    with pytest.raises(OutcomesError, match='SHA-256 differs'):
        read_outcomes(result, record)
    os.remove(tmp_path / 'knn.outcomes.npz')
    with pytest.raises(OutcomesError, match='is missing'):
        read_outcomes(result, record)


def test_the_file_holds_no_pickle(tmp_path):
    record = write_outcomes(str(tmp_path / 'r.json'), _outcomes())
    with np.load(tmp_path / record['file'], allow_pickle=False) as npz:
        assert set(npz.files) == {'__images__', '__meta__', 'k10', 'k20'}


def test_ragged_arrays_keep_each_images_rows():
    scores = np.array([.9, .8, .7, .1, .5], np.float32)
    out = Outcomes(['a', 'b', 'c'], {'scores.values': scores,
                                     'scores.offsets': np.array([0, 2, 2, 5])},
                   kind='coco')
    back = Outcomes.from_bytes(out.to_bytes())
    np.testing.assert_array_equal(back.ragged('scores', 0), scores[:2])
    assert back.ragged('scores', 1).size == 0
    np.testing.assert_array_equal(back.ragged('scores', 2), scores[2:])


@pytest.mark.parametrize('arrays, kind, match', [
    ({'k20': np.zeros(3, bool)}, 'correct', '3 rows for 4 images'),
    ({'k20': np.zeros(4, np.int64)}, 'correct', 'is boolean'),
    ({'x.values': np.zeros(5)}, 'coco', 'needs offsets'),
    ({'k20': np.zeros(4, bool)}, 'probs', 'kind must be one of'),
])
def test_malformed_outcomes_are_refused_when_made(arrays, kind, match):
    with pytest.raises(ValueError, match=match):
        Outcomes(['a', 'b', 'c', 'd'], arrays, kind=kind)


def test_image_keys_are_relative_to_the_data_root(tmp_path):
    class Folder:
        data_root = str(tmp_path)

        def __len__(self):
            return 2

        def get_data_info(self, i):
            return dict(img_path=str(tmp_path / 'val' / f'{i}.png'))

    assert dataset_image_keys(Folder()) == ['val/0.png', 'val/1.png']
    # an image outside the root, or a data set without one: its absolute
    # path (never a path relative to the working directory)
    elsewhere = str(tmp_path.parent / 'x.png')
    assert image_key(elsewhere, str(tmp_path)) == elsewhere
    assert image_key('rel/y.png', '') == os.path.abspath('rel/y.png')
