from . import backbones, heads, losses, necks, selfsup  # noqa: F401
