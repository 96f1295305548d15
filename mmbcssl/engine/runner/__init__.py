from .imagenet_c_loop import ImageNetCTestLoop

__all__ = ['ImageNetCTestLoop']
