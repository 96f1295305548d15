"""The DINO teacher's exponential moving average."""
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmpretrain.registry import HOOKS

from mmbcssl.engine.schedules import cosine_schedule


@HOOKS.register_module()
class DINOTeacherHook(Hook):
    """After every optimizer step: ``teacher = m * teacher + (1 - m) *
    student``, with m following a cosine from ``base_momentum`` to
    ``final_momentum`` over all training iterations.

    m is in the paper's convention (weight of the *old* teacher). mmengine's
    ``ExponentialMovingAverage`` weights the *new* value by its
    ``momentum``; we do not use it, so no conversion is needed anywhere.

    A hook rather than code in the model's ``train_step``: mmengine's DDP
    wrapper runs its own train step and never calls the model's.

    Args:
        base_momentum (float): Defaults to 0.996.
        final_momentum (float): Defaults to 1.0.
    """
    priority = 'ABOVE_NORMAL'

    def __init__(self, base_momentum: float = 0.996,
                 final_momentum: float = 1.0) -> None:
        if not 0 <= base_momentum <= final_momentum <= 1:
            raise ValueError('need 0 <= base_momentum <= final_momentum <= 1, '
                             f'got {base_momentum}, {final_momentum}')
        self.base_momentum = base_momentum
        self.final_momentum = final_momentum

    def momentum(self, it: int, total: int) -> float:
        return cosine_schedule(self.base_momentum, self.final_momentum, it,
                               total)

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        # runner.iter is the 0-based index of the step just taken.
        model.momentum_update(self.momentum(runner.iter, runner.max_iters))
