from .dino_optim_constructor import DINOOptimWrapperConstructor
from .dino_optim_wrapper import (DINOAmpOptimWrapper, DINOOptimWrapper,
                                 clip_per_tensor)

__all__ = [
    'DINOOptimWrapperConstructor', 'DINOOptimWrapper', 'DINOAmpOptimWrapper',
    'clip_per_tensor'
]
