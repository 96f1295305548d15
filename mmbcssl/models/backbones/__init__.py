from .bcssl import BCSSL, BCSSLBlock
from .swin_last_blocks import SwinTransformerLastBlocks

__all__ = ['BCSSL', 'BCSSLBlock', 'SwinTransformerLastBlocks']
