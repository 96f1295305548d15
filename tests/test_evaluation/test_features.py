"""FeatureTransform: the input a frozen backbone is evaluated with comes from
its config (data_preprocessor mean/std/to_rgb, the test pipeline's resize
and crop), equals the preprocessing written out by hand, and a feature map
is refused rather than averaged silently. KNNProtocol refuses settings it
does not know."""
import os.path as osp

import pytest
import torch
import torch.nn as nn
from mmengine.config import Config

from mmbcssl.evaluation.features import FeatureTransform, extract_features
from mmbcssl.evaluation.knn import KNNProtocol

IMAGENET = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                to_rgb=True)


def _cfg(**model_pre):
    return Config(dict(model=dict(type='ImageClassifier',
                                  data_preprocessor=model_pre)))


def _model():
    torch.manual_seed(0)
    return nn.ModuleDict(dict(backbone=nn.Sequential(
        nn.Conv2d(3, 6, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten()))).eval()


def test_other_statistics_are_the_models_own(demo_data):
    """A backbone trained on raw BGR pixels (mean 0, std 1, to_rgb False) is
    fed raw BGR pixels: its features equal the backbone applied by hand to
    (x - 0) / 1 and differ from the ImageNet-normalised ones, which equal
    the backbone applied to (flip(x) - mean) / std."""
    raw = FeatureTransform.from_config(
        _cfg(mean=[0, 0, 0], std=[1, 1, 1], to_rgb=False), 36, 32)
    imagenet = FeatureTransform.from_config(_cfg(**IMAGENET), 36, 32)
    assert raw.pipeline() == imagenet.pipeline()
    ds = raw.dataset(osp.join(demo_data, 'imagenet'), 'val')
    model = _model()
    got_raw, labels = extract_features(model, ds, 5, transform=raw)
    got_imagenet, _ = extract_features(model, ds, 5, transform=imagenet)

    images = torch.stack([ds[i]['inputs'] for i in range(len(ds))])
    assert images.dtype == torch.uint8  # [N, 3, 32, 32] BGR as loaded
    x = images.float()
    mean = torch.tensor(IMAGENET['mean']).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET['std']).view(1, 3, 1, 1)
    with torch.no_grad():
        by_hand_raw = model['backbone'](x)
        by_hand_imagenet = model['backbone']((x.flip(1) - mean) / std)
    torch.testing.assert_close(got_raw, by_hand_raw, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(got_imagenet, by_hand_imagenet, rtol=1e-5,
                               atol=1e-5)
    assert not torch.allclose(got_raw, got_imagenet, atol=1e-2)
    assert labels.tolist() == [ds[i]['data_samples'].gt_label.item()
                               for i in range(len(ds))]


def test_from_config_reads_preprocessor_and_test_pipeline():
    cfg = Config(dict(
        model=dict(data_preprocessor=dict(mean=[1, 2, 3], std=[4, 5, 6])),
        # mmengine's Runner gives the model this one only when it has none
        data_preprocessor=IMAGENET,
        test_dataloader=dict(dataset=dict(pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='ResizeEdge', scale=288, edge='short'),
            dict(type='CenterCrop', crop_size=256),
            dict(type='PackInputs')]))))
    t = FeatureTransform.from_config(cfg)
    # mmpretrain's preprocessors default to_rgb to False
    assert (t.mean, t.std, t.to_rgb) == ((1, 2, 3), (4, 5, 6), False)
    assert (t.resize, t.crop) == (288, 256)
    assert t.input_record() == dict(mean=[1, 2, 3], std=[4, 5, 6],
                                    to_rgb=False)
    # the options of a tool win over the config
    flags = FeatureTransform.from_config(cfg, resize=36, crop=32)
    assert (flags.resize, flags.crop) == (36, 32)
    # the top-level preprocessor serves a model without one; no test
    # pipeline: DINO's eval_knn.py sizes
    top = FeatureTransform.from_config(Config(dict(
        model=dict(type='DINO'), data_preprocessor=IMAGENET)))
    assert top.to_rgb and top.mean == tuple(IMAGENET['mean'])
    assert (top.resize, top.crop) == (256, 224)
    # mmdet/mmseg name the flip bgr_to_rgb
    assert FeatureTransform.from_config(_cfg(
        mean=[0, 0, 0], std=[1, 1, 1], bgr_to_rgb=True)).to_rgb


def test_config_without_statistics_is_refused_in_one_line():
    with pytest.raises(ValueError, match='states no input mean/std') as e:
        FeatureTransform.from_config(Config(dict(model=dict(
            type='ImageClassifier'))))
    assert '\n' not in str(e.value)


def test_a_feature_map_is_refused_not_averaged(demo_data):
    t = FeatureTransform.from_config(_cfg(**IMAGENET), 36, 32)
    ds = t.dataset(osp.join(demo_data, 'imagenet'), 'val')
    model = nn.ModuleDict(dict(backbone=nn.Conv2d(3, 4, 3))).eval()
    with pytest.raises(ValueError, match='GlobalAveragePooling'):
        extract_features(model, ds, 5, transform=t)


def test_knn_protocol_refuses_unknown_and_invalid_settings():
    assert KNNProtocol.from_dict(dict(ks=[20, 10, 20])).ks == (10, 20)
    with pytest.raises(ValueError, match=r"unknown setting\(s\) \['tempera"
                       r"ture_'\]; accepted: \['ks', 'temperature'"):
        KNNProtocol.from_dict(dict(temperature_=0.1))
    with pytest.raises(ValueError, match='bank_dtype'):
        KNNProtocol(bank_dtype='half')
    with pytest.raises(ValueError, match='ks'):
        KNNProtocol(ks=(0, 5))
    with pytest.raises(Exception):
        KNNProtocol().ks = (1, )  # frozen


def test_run_knn_batch_size_changes_no_number_and_is_recorded(demo_data):
    """The batch size is how many images go through at once, nothing
    more: the metrics of batches of 7 and 40 are the same; each result's
    fingerprint records the batch it was made with."""
    from mmbcssl.evaluation.knn import run_knn
    t = FeatureTransform.from_config(_cfg(**IMAGENET), 36, 32)
    root = osp.join(demo_data, 'imagenet')
    bank, query = t.dataset(root, 'train'), t.dataset(root, 'val')
    results = [run_knn(_model(), KNNProtocol(ks=(1, 5), batch_size=b), t,
                       bank, query) for b in (7, 40)]
    assert results[0].metrics == results[1].metrics
    assert results[0].protocol == results[1].protocol
    assert results[0].protocol['images'] == dict(train=80, val=40)
    runs = [r.fingerprint({}, {}, dict(seed=0))['run'] for r in results]
    assert [r['global_batch'] for r in runs] == [7, 40]
