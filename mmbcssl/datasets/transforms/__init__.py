from .dino_multi_crop import DINOMultiCrop

__all__ = ['DINOMultiCrop']
