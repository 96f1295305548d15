"""Parameter groups for DINO (facebookresearch/dino ``get_params_groups``)."""
import torch.nn as nn
from mmengine.model import is_model_wrapper
from mmpretrain.registry import (OPTIM_WRAPPER_CONSTRUCTORS, OPTIM_WRAPPERS,
                                 OPTIMIZERS)

from .dino_optim_wrapper import DINOAmpOptimWrapper, DINOOptimWrapper
from .guarded_optim_wrapper_constructor import GuardedOptimWrapperConstructor


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class DINOOptimWrapperConstructor(GuardedOptimWrapperConstructor):
    """Two groups: weights (decayed) and biases + all 1-D parameters (norms,
    layer scales) with weight decay 0; the teacher is left out (it has no
    gradients). Gives the DINO optim wrapper the head's last-layer
    parameters for its epoch-0 freeze.

    The wrapper is the DINO variant of the configured type (``OptimWrapper``
    or ``DINOOptimWrapper`` -> :class:`DINOOptimWrapper`, ``AmpOptimWrapper``
    or ``DINOAmpOptimWrapper`` -> :class:`DINOAmpOptimWrapper`), so the
    per-tensor clipping and the last-layer freeze survive a launcher's
    ``--amp``, which sets ``type='AmpOptimWrapper'``.

    A weight-decay schedule configured with ``eta_min_ratio`` (a ratio of
    each group's own value) keeps the no-decay group at exactly 0.
    """

    variants = {
        'OptimWrapper': DINOOptimWrapper,
        'AmpOptimWrapper': DINOAmpOptimWrapper,
        'GuardedOptimWrapper': DINOOptimWrapper,
        'GuardedAmpOptimWrapper': DINOAmpOptimWrapper,
    }

    def __call__(self, model: nn.Module):
        if is_model_wrapper(model):
            model = model.module
        decay, no_decay, last = [], [], []
        for name, p in model.named_parameters():
            if not p.requires_grad:
                continue  # the teacher and frozen parts
            (no_decay if p.ndim <= 1 or name.endswith('.bias') else
             decay).append(p)
            if 'head.last_layer' in name:
                last.append(p)
        wd = self.optimizer_cfg.get('weight_decay', 0.)
        cfg = dict(self.optimizer_cfg)
        cfg['params'] = [
            dict(params=decay, weight_decay=wd),
            dict(params=no_decay, weight_decay=0.),
        ]
        optimizer = OPTIMIZERS.build(cfg)
        wrapper = OPTIM_WRAPPERS.build(
            dict(self.optim_wrapper_cfg),
            default_args=dict(optimizer=optimizer))
        wrapper.last_layer_params = last
        return wrapper
