from .bcssl import BCSSL, BCSSLBlock
from .original_swin_transformer import OriginalSwinTransformer
from .swin_last_blocks import SwinTransformerLastBlocks
from .vision_transformer_last_blocks import VisionTransformerLastBlocks

__all__ = [
    'BCSSL', 'BCSSLBlock', 'OriginalSwinTransformer',
    'SwinTransformerLastBlocks', 'VisionTransformerLastBlocks'
]
