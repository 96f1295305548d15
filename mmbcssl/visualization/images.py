"""Images in, figures out: what the visualisation tools share."""
import io
import os
import os.path as osp
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from mmbcssl.datasets.transforms.load_image_safe import CorruptImageError
from mmbcssl.fileio import atomic_write

# ImageNet statistics (RGB, 0-255), the data preprocessors of every
# project config
MEAN = (123.675, 116.28, 103.53)
STD = (58.395, 57.12, 57.375)

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.ppm', '.tif', '.tiff',
                  '.webp')


class OutputExistsError(FileExistsError):
    """An output file that would be overwritten without ``--overwrite``."""


def list_images(source: str, max_images: Optional[int] = None) -> List[str]:
    """An image file, or every image under a folder (recursive, sorted).

    Args:
        source (str): A file or a folder.
        max_images (int, optional): Keep the first ones only.

    Raises:
        FileNotFoundError: ``source`` does not exist or holds no image.
    """
    if osp.isfile(source):
        paths = [source]
    elif osp.isdir(source):
        paths = sorted(
            osp.join(root, f) for root, _, files in os.walk(source)
            for f in files if f.lower().endswith(IMG_EXTENSIONS))
    else:
        raise FileNotFoundError(f'{source!r} is neither an image nor a '
                                'folder')
    if not paths:
        raise FileNotFoundError(
            f'no image ({", ".join(IMG_EXTENSIONS)}) under {source!r}')
    return paths[:max_images] if max_images else paths


def load_image(path: str,
               img_size: int,
               resize: Optional[int] = None) -> np.ndarray:
    """An RGB ``uint8 [img_size, img_size, 3]`` image.

    Args:
        path (str): Image file.
        img_size (int): Output side.
        resize (int, optional): Resize the short side to this (bicubic),
            then centre-crop ``img_size`` (the evaluation protocol). None
            resizes the whole image to ``img_size x img_size``, as RepLKNet's
            ERF script does. Defaults to None.

    Raises:
        CorruptImageError: ``path`` is not an image PIL can read.
    """
    try:
        with Image.open(path) as im:
            im.load()
            im = im.convert('RGB')
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        # PIL raises SyntaxError for some malformed headers
        raise CorruptImageError(
            f'{path} is not an image that PIL can read ({type(e).__name__}); '
            f'give image files ({", ".join(IMG_EXTENSIONS)}) or a folder of '
            'them') from None
    if resize is None:
        im = im.resize((img_size, img_size), Image.BICUBIC)
    else:
        w, h = im.size
        scale = resize / min(w, h)
        im = im.resize((max(img_size, round(w * scale)),
                        max(img_size, round(h * scale))), Image.BICUBIC)
        w, h = im.size
        left, top = (w - img_size) // 2, (h - img_size) // 2
        im = im.crop((left, top, left + img_size, top + img_size))
    return np.asarray(im, dtype=np.uint8).copy()


def to_input(images: Sequence[np.ndarray],
             device: torch.device = torch.device('cpu'),
             mean: Sequence[float] = MEAN,
             std: Sequence[float] = STD) -> torch.Tensor:
    """RGB ``uint8 [H, W, 3]`` images as a normalised ``[N, 3, H, W]``
    float tensor (ImageNet statistics, as the configs' preprocessors)."""
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float()
    m = torch.tensor(mean).view(1, 3, 1, 1)
    s = torch.tensor(std).view(1, 3, 1, 1)
    return ((x - m) / s).to(device)


def check_output(path: str, overwrite: bool = False) -> None:
    """Refuse to replace an existing ``path`` unless ``overwrite``."""
    if osp.exists(path) and not overwrite:
        raise OutputExistsError(f'{path} exists; pass --overwrite to '
                                'replace it')


def save_figure(fig,
                path: str,
                overwrite: bool = False,
                palette: bool = False) -> Tuple[int, int]:
    """Write a matplotlib figure as a PNG, atomically.

    The image is ``figsize * dpi`` pixels exactly (no tight bounding box),
    so a caller can size it.

    Args:
        fig (matplotlib.figure.Figure): The figure.
        path (str): Output file.
        overwrite (bool): Replace an existing file. Defaults to False.
        palette (bool): Store 256 colours (median cut, dithered) instead of
            RGBA: about 3x smaller, for figures kept in a repository.
            Defaults to False.

    Returns:
        tuple: ``(width, height)`` in pixels.
    """
    check_output(path, overwrite)
    buf = io.BytesIO()
    fig.savefig(buf, format='png', dpi=fig.dpi)
    if palette:
        buf.seek(0)
        with Image.open(buf) as im:
            small = im.convert('RGB').quantize(colors=256)
        buf = io.BytesIO()
        small.save(buf, format='png', optimize=True)
    atomic_write(buf.getvalue(), path)
    w, h = fig.get_size_inches() * fig.dpi
    return int(round(w)), int(round(h))
