from .dino_optim_constructor import DINOOptimWrapperConstructor
from .dino_optim_wrapper import (DINOAmpOptimWrapper, DINOOptimWrapper,
                                 clip_per_tensor)
from .guarded_optim_wrapper import (GuardedAmpOptimWrapper,
                                    GuardedOptimWrapper, NonFiniteLossGuard)
from .guarded_optim_wrapper_constructor import GuardedOptimWrapperConstructor
from .layer_decay_optim_wrapper_constructor import \
    LayerDecayOptimWrapperConstructor

__all__ = [
    'DINOOptimWrapperConstructor', 'DINOOptimWrapper', 'DINOAmpOptimWrapper',
    'clip_per_tensor', 'GuardedOptimWrapper', 'GuardedAmpOptimWrapper',
    'NonFiniteLossGuard', 'GuardedOptimWrapperConstructor',
    'LayerDecayOptimWrapperConstructor'
]
