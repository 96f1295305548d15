"""mmengine's default optimizer construction, with the guarded variant of
the optim wrapper the config names."""
from typing import Dict, Optional, Union

from mmengine.optim import DefaultOptimWrapperConstructor
from mmpretrain.registry import OPTIM_WRAPPER_CONSTRUCTORS

from .guarded_optim_wrapper import GuardedAmpOptimWrapper, GuardedOptimWrapper


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class GuardedOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """mmengine's ``DefaultOptimWrapperConstructor`` (same parameter groups
    and ``paramwise_cfg``) that builds the variant of ``optim_wrapper.type``
    in :attr:`variants`: ``OptimWrapper`` -> :class:`GuardedOptimWrapper`,
    ``AmpOptimWrapper`` -> :class:`GuardedAmpOptimWrapper`.

    The constructor, not the wrapper type, decides, because launchers
    rewrite the type: mmpretrain's and mim's ``tools/train.py --amp`` set
    ``optim_wrapper.type = 'AmpOptimWrapper'`` whatever it was; the variant
    of that type keeps the guard (and, in :class:`DINOOptimWrapperConstructor`,
    DINO's gradient treatment).

    Args:
        optim_wrapper_cfg (dict): The ``optim_wrapper`` config.
        paramwise_cfg (dict, optional): As for mmengine's constructor.
            Defaults to None.
    """

    #: config wrapper type -> the class this constructor builds for it
    variants: Dict[str, type] = {
        'OptimWrapper': GuardedOptimWrapper,
        'AmpOptimWrapper': GuardedAmpOptimWrapper,
    }

    def __init__(self,
                 optim_wrapper_cfg: dict,
                 paramwise_cfg: Optional[dict] = None) -> None:
        super().__init__(optim_wrapper_cfg, paramwise_cfg)
        # a class, not a name: the registry of an mmdet/mmseg default scope
        # does not hold this project's wrappers
        self.optim_wrapper_cfg['type'] = self.variant_of(
            self.optim_wrapper_cfg.get('type', 'OptimWrapper'))

    @classmethod
    def variant_of(cls, wrapper_type: Union[str, type]) -> type:
        """The wrapper class built for the config's ``wrapper_type``."""
        name = wrapper_type if isinstance(wrapper_type, str) else \
            wrapper_type.__name__
        name = name.rsplit('.', 1)[-1]  # 'mmengine.AmpOptimWrapper'
        for built in cls.variants.values():
            if name == built.__name__:
                return built
        if name in cls.variants:
            return cls.variants[name]
        raise ValueError(
            f'{cls.__name__} has no variant of optim_wrapper type {name!r}; '
            f'use one of {sorted(cls.variants)}')
