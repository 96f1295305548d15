from . import hooks, model_wrappers, optimizers, runner  # noqa: F401
