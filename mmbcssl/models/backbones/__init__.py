from .bcssl import BCSSL, BCSSLBlock
from .swin_last_blocks import SwinTransformerLastBlocks
from .vision_transformer_last_blocks import VisionTransformerLastBlocks

__all__ = [
    'BCSSL', 'BCSSLBlock', 'SwinTransformerLastBlocks',
    'VisionTransformerLastBlocks'
]
