"""EsViT: the region loss against its formula on a case with a known
matching, both centres, the teacher with two heads, the config."""
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.registry import init_default_scope

import mmbcssl  # noqa: F401
from mmbcssl.models.losses import DINOLoss, EsViTLoss
from mmpretrain.registry import MODELS
from tests.conftest import REPO_ROOT

K, C = 12, 6
TINY_SWIN = dict(type='SwinTransformer',
                 arch=dict(embed_dims=8, depths=[1, 1, 1, 1],
                           num_heads=[1, 1, 2, 2]),
                 img_size=64, window_size=2, out_indices=(3, ),
                 pad_small_map=True)


def _head(in_channels):
    return dict(type='DINOHead', in_channels=in_channels, out_channels=K,
                hidden_channels=16, bottleneck_channels=8)


def _esvit():
    model = MODELS.build(
        dict(type='EsViT', backbone=TINY_SWIN, head=_head(64),
             region_head=_head(64),
             loss=dict(type='EsViTLoss', out_channels=K)))
    model.init_weights()
    return model


def test_region_loss_equals_the_formula_with_a_known_matching():
    """Student region r of view v is a noisy copy of teacher region
    perm[r] of the other view, so the cosine argmax must pick perm[r]; the
    loss must then be the cross-entropy written out region by region."""
    g = torch.Generator().manual_seed(0)
    b, t, t_local = 2, 4, 3
    t_feats = [torch.randn(b, t, C, generator=g) for _ in range(2)]
    perm = {0: torch.tensor([2, 0, 3, 1]), 1: torch.tensor([1, 3, 0, 2])}
    local_perm = torch.tensor([3, 0, 2])
    # view 0 and 1 are the global views; view 2 a local one (3 regions)
    s_feats = [
        t_feats[1][:, perm[0]] + 0.01 * torch.randn(b, t, C, generator=g),
        t_feats[0][:, perm[1]] + 0.01 * torch.randn(b, t, C, generator=g),
        None,
    ]
    s_out = [torch.randn(b, K, generator=g) for _ in range(3)]
    t_out = [torch.randn(b, K, generator=g) for _ in range(2)]
    s_reg = [torch.randn(b, n, K, generator=g) for n in (t, t, t_local)]
    t_reg = [torch.randn(b, t, K, generator=g) for _ in range(2)]
    # the local view copies teacher view 0's regions; for the pair with
    # teacher view 1 its match is whatever the argmax says (computed below)
    s_feats[2] = t_feats[0][:, local_perm] + 0.01 * torch.randn(
        b, t_local, C, generator=g)

    loss = EsViTLoss(K, teacher_temp=0.04, student_temp=0.1)
    out = loss(s_out, t_out, s_reg, t_reg, s_feats, t_feats, epoch=0)

    def ce(q, s):  # q [K] target probs, s [K] student logits
        return -(q * F.log_softmax(s / 0.1, dim=-1)).sum()

    def match(f_s, f_t):
        sims = F.normalize(f_s, dim=-1) @ F.normalize(f_t, dim=-1).T
        return sims.argmax(dim=1)

    # the known matchings are what the argmax finds
    for i in range(b):
        assert torch.equal(match(s_feats[0][i], t_feats[1][i]), perm[0])
        assert torch.equal(match(s_feats[1][i], t_feats[0][i]), perm[1])
        assert torch.equal(match(s_feats[2][i], t_feats[0][i]), local_perm)
    terms = []
    for ti in range(2):
        q = F.softmax(t_reg[ti] / 0.04, dim=-1)  # centre starts at 0
        for v in range(3):
            if v == ti:
                continue
            per_image = []
            for i in range(b):
                j = match(s_feats[v][i], t_feats[ti][i])
                per_image.append(torch.stack([
                    ce(q[i, j[r]], s_reg[v][i, r])
                    for r in range(s_reg[v].shape[1])
                ]).mean())
            terms.append(torch.stack(per_image).mean())
    region = torch.stack(terms).mean()
    view = DINOLoss(K, teacher_temp=0.04)(s_out, t_out, 0)
    torch.testing.assert_close(out['region'], region)
    torch.testing.assert_close(out['view'], view)
    torch.testing.assert_close(out['loss'], 0.5 * (view + region))
    # both centres moved toward their batch means, after the loss
    torch.testing.assert_close(
        loss.region_center,
        0.1 * torch.cat([r.flatten(0, 1) for r in t_reg]).mean(0, True))
    torch.testing.assert_close(loss.center,
                               0.1 * torch.cat(t_out).mean(0, True))


def test_teacher_has_both_heads_moves_and_gets_no_gradients():
    model = _esvit()
    model.train()
    views = [torch.randn(2, 3, 64, 64) for _ in range(2)] + \
        [torch.randn(2, 3, 32, 32) for _ in range(2)]
    out = model.loss(views, None)
    assert set(out) == {'loss', 'view', 'region'}
    out['loss'].backward()
    assert all(p.grad is None for p in model.teacher.parameters())
    assert model.region_head.last_layer.weight_v.grad.abs().sum() > 0
    assert model.backbone.norm3.weight.grad.abs().sum() > 0
    # the EMA covers the region head too, in the paper's convention
    for p in model.region_head.parameters():
        p.data.add_(1.0)
    before = model.teacher.region_head.mlp[0].weight.clone()
    model.momentum_update(0.9)
    torch.testing.assert_close(
        model.teacher.region_head.mlp[0].weight,
        0.9 * before + 0.1 * model.region_head.mlp[0].weight)


def test_pooled_backbone_or_neck_is_refused():
    with pytest.raises(ValueError, match='set neck=None'):
        MODELS.build(dict(type='EsViT', backbone=TINY_SWIN, head=_head(64),
                          region_head=_head(64),
                          neck=dict(type='GlobalAveragePooling'),
                          loss=dict(type='EsViTLoss', out_channels=K)))


def test_config_builds_with_two_heads_of_one_shape():
    init_default_scope('mmpretrain')
    cfg = Config.fromfile(
        osp.join(REPO_ROOT, 'configs', 'esvit', 'esvit_swin-t_300e.py'))
    assert cfg.model.region_head == cfg.model.head
    assert cfg.model.backbone.out_indices == (3, )
    # the DINO Swin-T 300-epoch recipe underneath
    dino = Config.fromfile(
        osp.join(REPO_ROOT, 'configs', 'dino', 'swin-t_300e.py'))
    assert cfg.train_cfg.max_epochs == dino.train_cfg.max_epochs == 300
    assert cfg.param_scheduler == dino.param_scheduler
    model = MODELS.build(cfg.model)
    assert model.region_head is not model.head
    assert sum(p.numel() for p in model.region_head.parameters()) == sum(
        p.numel() for p in model.head.parameters())
