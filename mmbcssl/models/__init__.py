from . import backbones, heads, losses, selfsup  # noqa: F401
