"""apis.build_from_config: the one way from a config to a model, in the
config's registry scope (mmpretrain when it names none)."""
import torch.nn as nn
from mmengine.config import Config
from mmengine.registry import DefaultScope

import mmbcssl  # noqa: F401
from mmbcssl.apis import DEFAULT_SCOPE, build_from_config


def test_builds_in_the_configs_scope_and_leaves_the_config_alone():
    cfg = Config(dict(model=dict(type='ImageClassifier', backbone=dict(
        type='ResNet', depth=18), neck=dict(type='GlobalAveragePooling'))))
    before = cfg.to_dict()
    model = build_from_config(cfg)
    assert DEFAULT_SCOPE == 'mmpretrain'
    assert DefaultScope.get_current_instance().scope_name == 'mmpretrain'
    assert type(model).__name__ == 'ImageClassifier'
    assert cfg.to_dict() == before  # built from a copy
    neck = build_from_config(cfg, cfg.model.neck)
    assert type(neck).__name__ == 'GlobalAveragePooling'
    assert isinstance(neck, nn.Module)
