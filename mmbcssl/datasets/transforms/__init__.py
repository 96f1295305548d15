from .dino_multi_crop import DINOMultiCrop
from .load_image_safe import CorruptImageError, LoadImageFromFileSafe

__all__ = ['DINOMultiCrop', 'LoadImageFromFileSafe', 'CorruptImageError']
