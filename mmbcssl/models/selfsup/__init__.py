from .dino import DINO
from .esvit import EsViT

__all__ = ['DINO', 'EsViT']
