"""CAMs with pytorch-grad-cam: Grad-CAM finds the object its class depends
on; target layers and token reshaping for CNNs, Swin and ViT; the feature
PCA; the tool's PNG grid and its one-line errors."""
import os.path as osp

import numpy as np
import pytest
import torch
from mmpretrain.registry import MODELS
from PIL import Image
from pytorch_grad_cam.utils.reshape_transforms import (
    swinT_reshape_transform, vit_reshape_transform)

import mmbcssl  # noqa: F401
from mmbcssl.cli import vis_cam
from mmbcssl.visualization.cam import compute_maps
from mmbcssl.visualization.feature_pca import feature_pca_rgb
from mmbcssl.visualization.images import to_input
from mmbcssl.visualization.layers import default_cam_layer, to_feature_map
from mmbcssl.visualization.model import VisModel
from tests.test_visualization.tiny_models import (dino_checkpoint,
                                                  probe_checkpoint,
                                                  tiny_config)

TINY_BCSSL = dict(type='BCSSL', arch=dict(depths=[1, 1, 1, 1],
                                          channels=[16, 16, 32, 32]),
                  kernel_size=3)
RED, BLUE = (220, 30, 30), (30, 30, 220)
# top-left corners of a 20 px square inside each 32 px quadrant of 64 px
QUADRANTS = [(6, 6), (6, 38), (38, 6), (38, 38)]


def _scene(rng, red_at=None, blue_at=None, size=64, side=20, noise=True):
    """Grey (noise) with a red and/or a blue square at (row, col)."""
    img = rng.integers(96, 160, size=(size, size, 3)).astype(np.uint8) \
        if noise else np.full((size, size, 3), 128, dtype=np.uint8)
    for colour, at in ((RED, red_at), (BLUE, blue_at)):
        if at is not None:
            img[at[0]:at[0] + side, at[1]:at[1] + side] = colour
    return img


def _colour_classifier(steps=20):
    """A tiny BC-SSL + linear head trained to tell a red square (class 0)
    from a blue one (class 1), the square anywhere in the image."""
    rng = np.random.default_rng(0)
    backbone = MODELS.build(TINY_BCSSL)
    backbone.init_weights()
    head = MODELS.build(dict(type='LinearClsHead', num_classes=2,
                             in_channels=32))
    model = VisModel(backbone, head=head).train()
    optim = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(steps):
        labels = [i % 2 for i in range(16)]
        images = [_scene(rng, **{('blue_at' if c else 'red_at'):
                                 tuple(rng.integers(0, 44, size=2))})
                  for c in labels]
        loss = torch.nn.functional.cross_entropy(
            model(to_input(images)), torch.tensor(labels))
        optim.zero_grad()
        loss.backward()
        optim.step()
    return model.eval()


def test_gradcam_peak_lies_in_the_quadrant_of_the_class_object():
    model = _colour_classifier()
    rng = np.random.default_rng(1)
    # both objects in one image: each class's CAM must find its own
    for red, blue in ((0, 3), (3, 0), (1, 2), (2, 1), (0, 1)):
        scene = _scene(rng, red_at=QUADRANTS[red], blue_at=QUADRANTS[blue])
        for cls, quadrant in ((0, red), (1, blue)):
            cams, classes = compute_maps(model, [scene], 'gradcam',
                                         target_class=cls)
            assert classes == [cls] and cams.shape == (1, 64, 64)
            py, px = np.unravel_index(cams[0].argmax(), cams[0].shape)
            q = QUADRANTS[quadrant]
            assert (py // 32, px // 32) == (q[0] // 32, q[1] // 32), \
                (red, blue, cls, py, px)


def test_eigencam_peak_lies_in_the_quadrant_of_the_object():
    backbone = MODELS.build(TINY_BCSSL)
    backbone.init_weights()
    model = VisModel(backbone).eval()
    rng = np.random.default_rng(2)
    # one square on a plain background: the first component separates it;
    # the sign rule must keep the square, not the background
    for q in QUADRANTS:
        cams, _ = compute_maps(model, [_scene(rng, red_at=q, noise=False)],
                               'eigencam')
        py, px = np.unravel_index(cams[0].argmax(), cams[0].shape)
        assert (py // 32, px // 32) == (q[0] // 32, q[1] // 32)


def test_token_maps_match_pytorch_grad_cam_reshapes():
    tokens = torch.randn(2, 1 + 4 * 4, 8)
    # ViT: the class token is dropped
    assert torch.equal(to_feature_map(tokens, (64, 64), extra_tokens=1),
                       vit_reshape_transform(tokens, 4, 4))
    swin = torch.randn(2, 3 * 5, 8)  # a non-square grid: 96 x 160 input
    assert torch.equal(to_feature_map((swin, (3, 5)), (96, 160)),
                       swinT_reshape_transform(swin, 3, 5))


@pytest.mark.parametrize('cfg, layer', [
    (dict(type='BCSSL', arch='tiny'), 'stages.3.2'),
    (dict(type='ResNet', depth=50), 'layer4.2'),
    (dict(type='SwinTransformer', arch=dict(
        embed_dims=16, depths=[1, 2], num_heads=[1, 2]), img_size=64,
        window_size=2, out_indices=(1, )), 'stages.1.blocks.1.norm1'),
    (dict(type='VisionTransformer', arch=dict(
        embed_dims=16, num_layers=2, num_heads=2, feedforward_channels=32),
        img_size=64, patch_size=16), 'layers.1.ln1'),
])
def test_default_target_layers_and_maps(cfg, layer):
    backbone = MODELS.build(cfg)
    backbone.init_weights()
    assert default_cam_layer(backbone) == layer
    if cfg['type'] in ('BCSSL', 'ResNet'):
        return  # full-size CNNs: the name is what is checked
    head = MODELS.build(dict(type='LinearClsHead', num_classes=3,
                             in_channels=32 if 'Swin' in cfg['type']
                             else 16))
    neck = MODELS.build(dict(type='GlobalAveragePooling')) \
        if 'Swin' in cfg['type'] else None
    model = VisModel(backbone, neck, head).eval()
    rng = np.random.default_rng(3)
    images = [_scene(rng, red_at=QUADRANTS[0]),
              _scene(rng, blue_at=QUADRANTS[3])]
    for method in ('gradcam', 'eigencam'):
        cams, _ = compute_maps(model, images, method)
        assert cams.shape == (2, 64, 64)
        assert np.isfinite(cams).all() and cams.max() > 0


def test_feature_pca_colours_alike_features_alike():
    # four parts (quadrants), each with its own feature vector: four points
    # span the three components, so each part gets its own colour
    parts = torch.randn(4, 8)
    feats = torch.empty(2, 8, 4, 4)  # 2 images, the same 4 parts
    for i, (r, c) in enumerate(((0, 0), (0, 2), (2, 0), (2, 2))):
        feats[:, :, r:r + 2, c:c + 2] = parts[i].view(1, 8, 1, 1)
    feats += 0.01 * torch.randn_like(feats)
    rgb = feature_pca_rgb(feats)
    assert rgb.shape == (2, 4, 4, 3)
    assert rgb.min() >= 0 and rgb.max() <= 1
    colours = [rgb[:, r:r + 2, c:c + 2].reshape(-1, 3)
               for r, c in ((0, 0), (0, 2), (2, 0), (2, 2))]
    # one colour per part across both images, different between parts
    assert max(np.ptp(col, axis=0).max() for col in colours) < 0.1
    means = [col.mean(0) for col in colours]
    assert min(np.abs(a - b).max() for i, a in enumerate(means)
               for b in means[i + 1:]) > 0.3


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp('tiny_cam')
    cfg3, cfg9 = tiny_config(folder, 3), tiny_config(folder, 9)
    return dict(cfg3=cfg3, cfg9=cfg9,
                dino9=dino_checkpoint(folder / 'dino9.pth', cfg9),
                probe9=probe_checkpoint(folder / 'probe9.pth', cfg9))


def test_tool_grid_png(demo_data, tiny, tmp_path, capsys):
    val = osp.join(demo_data, 'imagenet', 'val')
    out = str(tmp_path / 'cam.png')
    assert vis_cam.main([
        val, '--model', tiny['cfg3'], '--model', tiny['cfg9'],
        tiny['dino9'], '--max-images', '3', '--img-size', '64', '--out',
        out]) == 0
    # 28 px row labels + 3 cells; title 22 + column labels 18 + 6
    assert Image.open(out).size == (28 + 3 * 160, 46 + 2 * 160)
    assert 'Eigen-CAM at stages.3.0' in capsys.readouterr().out
    # feature PCA through the same grid
    out = str(tmp_path / 'pca.png')
    assert vis_cam.main([
        val, '--model', tiny['cfg9'], tiny['dino9'], '--method', 'pca',
        '--max-images', '2', '--img-size', '64', '--cell-size', '100',
        '--palette', '--out', out]) == 0
    with Image.open(out) as im:  # --palette: 256 colours
        assert im.size == (28 + 2 * 100, 46 + 100) and im.mode == 'P'


def test_tool_gradcam_with_a_linear_probe_checkpoint(demo_data, tiny,
                                                     tmp_path):
    val = osp.join(demo_data, 'imagenet', 'val')
    out = str(tmp_path / 'gradcam.png')
    assert vis_cam.main([
        val, '--model', tiny['cfg9'], tiny['probe9'], '--method', 'gradcam',
        '--max-images', '2', '--img-size', '64', '--out', out]) == 0
    assert Image.open(out).size == (28 + 2 * 160, 46 + 160)


def test_tool_bad_input_is_one_line(demo_data, tiny, tmp_path, capsys):
    val = osp.join(demo_data, 'imagenet', 'val')
    base = [val, '--max-images', '1', '--img-size', '32', '--out',
            str(tmp_path / 'c.png')]
    cases = [
        # an unknown target layer, with the closest names
        (['--model', tiny['cfg9'], tiny['dino9'], '--target-layer',
          'stages.3.7'], ["'stages.3.7'", 'did you mean']),
        # a 9x9 checkpoint for a 3x3 config
        (['--model', tiny['cfg3'], tiny['dino9']],
         ['(16, 1, 9, 9)', '(16, 1, 3, 3)']),
        # Grad-CAM needs a classification head's weights
        (['--model', tiny['cfg9'], tiny['dino9'], '--method', 'gradcam'],
         ['no head.* weights']),
        # ... for the config's number of classes
        (['--model', tiny['cfg9'], tiny['probe9'], '--method', 'gradcam',
          '--cfg-options', 'model.head.num_classes=5'],
         ['head.fc.weight has shape (10, 32)', '(5, 32)']),
    ]
    for extra, words in cases:
        assert vis_cam.main(base + extra) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
        assert err.startswith('error: ')
        for w in words:
            assert w in err, err


# (the images and the arguments after the common ones, words the one-line
# error must hold)
REFUSED = dict(
    # a file that is not an image (a traceback of PIL before)
    not_an_image=(['NOT_IMAGE'], ['notes.png is not an image', '.png']),
    # a Linear of a ConvNeXt block sees [N, H, W, C] (on CPU it is not even
    # called): the block and its depthwise conv / norm give maps
    channels_last_linear=(
        ['VAL', '--target-layer', 'stages.3.0.pointwise_conv1'],
        ['pointwise_conv1 (Linear)', 'channels-last', 'stages.3.0,',
         'stages.3.0.dw_norm']),
    # a module that is never called in forward: the list of stages
    never_called=(['VAL', '--target-layer', 'stages'],
                  ['stages (ModuleList) is never called', 'stages.3']),
    # the final norm sees the pooled features: a blank figure before
    pooled_norm=(['VAL', '--target-layer', 'norm3'],
                 ['norm3', 'pooled', '[N, C, 1, 1]', 'stages.3']),
    # the last block is 1 x 1 at 32 px: a blank figure before
    one_cell_map=(['VAL', '--img-size', '32'],
                  ['stages.3.0', '1 x 1 map at 32 x 32 px']),
    # layer scales that the config does not build were dropped unsaid
    layer_scale_dropped=(
        ['VAL', '--cfg-options', 'model.backbone.layer_scale_init_value=0'],
        ['4 backbone weights', 'stages.0.0.gamma', 'layer_scale_init_value',
         '--allow-partial-weights']),
)


@pytest.mark.parametrize('case', list(REFUSED))
def test_tool_refuses_in_one_line(case, demo_data, tiny, tmp_path, capsys):
    not_image = tmp_path / 'notes.png'
    not_image.write_text('not an image')
    where = dict(VAL=osp.join(demo_data, 'imagenet', 'val'),
                 NOT_IMAGE=str(not_image))
    (source, *extra), words = REFUSED[case]
    out = str(tmp_path / 'c.png')
    assert vis_cam.main([
        where[source], '--max-images', '1', '--img-size', '64', '--out', out,
        '--model', tiny['cfg9'], tiny['dino9']] + extra) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith('error: ')
    for w in words:
        assert w in err, err
    assert not osp.exists(out)


def test_tool_allow_partial_weights_loads_what_fits(demo_data, tiny,
                                                    tmp_path):
    val = osp.join(demo_data, 'imagenet', 'val')
    assert vis_cam.main([
        val, '--cfg-options', 'model.backbone.layer_scale_init_value=0',
        '--allow-partial-weights', '--max-images', '1', '--img-size', '64',
        '--out', str(tmp_path / 'c.png'), '--model', tiny['cfg9'],
        tiny['dino9']]) == 0
