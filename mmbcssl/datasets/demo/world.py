"""The procedural world of the demo data: textured shapes in clutter.

Class ``i`` is a shape (``SHAPES[i]``) filled with a texture
(``TEXTURES[i]``): both survive DINO's colour jitter, grayscale and blur, so
a self-supervised model has real signal to learn, while the colours are
drawn at random and carry no class information. Clutter (a smooth
background, distractor strokes, random position, scale and rotation) keeps
the task from being trivial. The same shapes are the object categories of
the COCO-style set. The ``plain`` style drops the clutter and the rotation
for the DINO learning experiments (``configs/dino/README.md``).

Every function takes a ``numpy.random.Generator``: images are a pure
function of their generator's seed.
"""
import math
from typing import Optional, Tuple

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

# All shapes are hole-free so that one COCO polygon describes each mask.
SHAPES = ('circle', 'square', 'triangle', 'star', 'cross', 'open_ring',
          'diamond', 'hexagon', 'crescent', 'arrow', 'pentagon', 'semicircle')
TEXTURES = ('stripes', 'dots', 'checker', 'waves', 'grid', 'rings', 'zigzag',
            'crosshatch', 'blobs', 'solid', 'diagonal', 'spots')
MAX_CLASSES = len(SHAPES)
STYLES = ('photo', 'hard', 'rendition', 'sketch', 'plain')
_SUPERSAMPLE = 3  # shapes are drawn larger, then reduced, for clean edges


def _regular(n: int, radius: float, phase: float = -math.pi / 2):
    return [(radius * math.cos(phase + 2 * math.pi * k / n),
             radius * math.sin(phase + 2 * math.pi * k / n))
            for k in range(n)]


def _outline(shape: str, r: float):
    """Vertices of ``shape`` around (0, 0), or None for round shapes."""
    if shape == 'square':
        return _regular(4, r, math.pi / 4)
    if shape == 'triangle':
        return _regular(3, r)
    if shape == 'pentagon':
        return _regular(5, r)
    if shape == 'hexagon':
        return _regular(6, r)
    if shape == 'diamond':
        return [(0, -r), (0.6 * r, 0), (0, r), (-0.6 * r, 0)]
    if shape == 'star':
        pts = []
        for k in range(10):
            rad = r if k % 2 == 0 else 0.42 * r
            a = -math.pi / 2 + math.pi * k / 5
            pts.append((rad * math.cos(a), rad * math.sin(a)))
        return pts
    if shape == 'cross':
        w = 0.34 * r
        return [(-w, -r), (w, -r), (w, -w), (r, -w), (r, w), (w, w), (w, r),
                (-w, r), (-w, w), (-r, w), (-r, -w), (-w, -w)]
    if shape == 'arrow':
        return [(-r, -0.3 * r), (0.1 * r, -0.3 * r), (0.1 * r, -0.8 * r),
                (r, 0), (0.1 * r, 0.8 * r), (0.1 * r, 0.3 * r),
                (-r, 0.3 * r)]
    return None


def shape_mask(shape: str, size: Tuple[int, int], center: Tuple[float, float],
               radius: float, angle: float) -> np.ndarray:
    """Boolean (H, W) mask of one shape.

    Args:
        shape (str): One of :data:`SHAPES`.
        size (tuple): (H, W) of the image.
        center (tuple): (x, y) in pixels.
        radius (float): Circumradius in pixels.
        angle (float): Rotation in radians.
    """
    h, w = size
    s = _SUPERSAMPLE
    canvas = Image.new('L', (w * s, h * s), 0)
    draw = ImageDraw.Draw(canvas)
    cx, cy, r = center[0] * s, center[1] * s, radius * s
    cos, sin = math.cos(angle), math.sin(angle)

    def place(pts):
        return [(cx + x * cos - y * sin, cy + x * sin + y * cos)
                for x, y in pts]

    def disc(dx, dy, rad, fill):
        x, y = cx + dx * cos - dy * sin, cy + dx * sin + dy * cos
        draw.ellipse([x - rad, y - rad, x + rad, y + rad], fill=fill)

    pts = _outline(shape, r)
    if pts is not None:
        draw.polygon(place(pts), fill=255)
    elif shape == 'circle':
        disc(0, 0, r, 255)
    elif shape == 'crescent':
        disc(0, 0, r, 255)
        disc(0.45 * r, -0.15 * r, 0.8 * r, 0)
    elif shape == 'semicircle':
        arc = [(r * math.cos(a), r * math.sin(a))
               for a in np.linspace(0, math.pi, 33)]
        draw.polygon(place(arc), fill=255)
    elif shape == 'open_ring':
        # An annulus with a 70 degree gap: ring-like but hole-free.
        outer = [(r * math.cos(a), r * math.sin(a))
                 for a in np.linspace(0.6, 2 * math.pi - 0.6, 48)]
        inner = [(0.55 * r * math.cos(a), 0.55 * r * math.sin(a))
                 for a in np.linspace(2 * math.pi - 0.6, 0.6, 48)]
        draw.polygon(place(outer + inner), fill=255)
    else:
        raise ValueError(f'unknown shape {shape!r}; known: {SHAPES}')
    small = canvas.resize((w, h), Image.BILINEAR)
    return np.asarray(small) >= 128


def texture(kind: str, size: Tuple[int, int], scale: float,
            rng: np.random.Generator,
            angle: Optional[float] = None) -> np.ndarray:
    """A (H, W) pattern in [0, 1] with random phase and orientation.

    Args:
        kind (str): One of :data:`TEXTURES`.
        size (tuple): (H, W).
        scale (float): Pattern period in pixels (about 5 at 96 px).
        rng (Generator): Randomness.
        angle (float, optional): Orientation in radians; random when None.
    """
    h, w = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    a = rng.uniform(0, math.pi) if angle is None else angle
    u = x * math.cos(a) + y * math.sin(a) + rng.uniform(0, 100)
    v = -x * math.sin(a) + y * math.cos(a) + rng.uniform(0, 100)
    p = scale * rng.uniform(0.85, 1.2)
    two_pi = 2 * math.pi
    if kind == 'stripes':
        pat = np.sin(two_pi * u / p) > 0
    elif kind == 'dots':
        pat = (np.sin(two_pi * u / p) * np.sin(two_pi * v / p)) > 0.45
    elif kind == 'checker':
        pat = (np.floor(u / p) + np.floor(v / p)) % 2 == 0
    elif kind == 'waves':
        wobble = 0.5 * p * np.sin(two_pi * v / (2.5 * p))
        pat = np.sin(two_pi * (u + wobble) / p) > 0
    elif kind == 'grid':
        pat = (np.abs(np.sin(math.pi * u / p)) < 0.3) | (
            np.abs(np.sin(math.pi * v / p)) < 0.3)
    elif kind == 'rings':
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        pat = np.sin(two_pi * np.hypot(x - cx, y - cy) / p) > 0
    elif kind == 'zigzag':
        tri = 2 * np.abs((v / (1.5 * p)) % 1 - 0.5)
        pat = np.sin(two_pi * (u + p * tri) / p) > 0
    elif kind == 'crosshatch':
        pat = (np.abs(np.sin(math.pi * (u + v) / p)) < 0.25) | (
            np.abs(np.sin(math.pi * (u - v) / p)) < 0.25)
    elif kind == 'blobs':
        low = rng.random((max(2, h // 8), max(2, w // 8)))
        up = np.asarray(
            Image.fromarray((low * 255).astype(np.uint8)).resize(
                (w, h), Image.BICUBIC)) / 255.
        pat = up > 0.5
    elif kind == 'solid':
        pat = np.ones((h, w), bool)
    elif kind == 'diagonal':
        pat = np.sin(two_pi * (u + v) / (1.6 * p)) > 0.6
    elif kind == 'spots':
        pat = (np.sin(two_pi * u / (1.5 * p)) +
               np.sin(two_pi * v / (1.5 * p))) > 1.2
    else:
        raise ValueError(f'unknown texture {kind!r}; known: {TEXTURES}')
    return pat.astype(np.float64)


def random_colour_pair(rng: np.random.Generator,
                       min_distance: float = 90.) -> np.ndarray:
    """Two RGB colours far enough apart for the texture to show."""
    while True:
        c = rng.integers(0, 256, (2, 3)).astype(np.float64)
        if np.linalg.norm(c[0] - c[1]) >= min_distance:
            return c


def background(size: Tuple[int, int], rng: np.random.Generator,
               distractors: int) -> np.ndarray:
    """A smooth colour field with random strokes, float (H, W, 3)."""
    h, w = size
    low = rng.integers(0, 256, (3, 3, 3)).astype(np.uint8)
    bg = np.asarray(Image.fromarray(low).resize((w, h), Image.BICUBIC),
                    dtype=np.float64)
    bg += rng.normal(0, 6, bg.shape)
    img = Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(distractors):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        x0, y0 = rng.uniform(0, w), rng.uniform(0, h)
        if rng.random() < 0.5:
            x1, y1 = x0 + rng.uniform(-w / 3, w / 3), y0 + rng.uniform(
                -h / 3, h / 3)
            draw.line([x0, y0, x1, y1], fill=colour,
                      width=int(rng.integers(1, 3)))
        else:
            r = rng.uniform(2, min(h, w) / 12)
            draw.ellipse([x0 - r, y0 - r, x0 + r, y0 + r], fill=colour)
    return np.asarray(img, dtype=np.float64)


def paint(img: np.ndarray, mask: np.ndarray, pattern: np.ndarray,
          colours: np.ndarray) -> np.ndarray:
    """Fill ``mask`` of ``img`` with ``pattern`` in two colours."""
    fill = pattern[..., None] * colours[0] + (1 - pattern[..., None]) * \
        colours[1]
    return np.where(mask[..., None], fill, img)


def class_image(shape: str, tex: str, size: int, rng: np.random.Generator,
                style: str = 'photo') -> np.ndarray:
    """One uint8 (H, W, 3) image of a class in a given style.

    Styles: ``photo`` (train/val), ``hard`` (A-style: small or cut-off,
    occluded, low contrast, heavy clutter), ``rendition`` (R-style: flat,
    posterised, outlined), ``sketch`` (grayscale pencil lines on white),
    ``plain`` (train/val of the DINO learning experiments: a photo without
    the nuisances that DINO's augmentations do not cover, i.e. upright shape
    and texture on a plain grey background without distractors; colours
    are still random).
    """
    if style not in STYLES:
        raise ValueError(f'unknown style {style!r}; known: {STYLES}')
    hw = (size, size)
    period = size / 16
    if style == 'hard':
        big = rng.random() < 0.5
        radius = size * (rng.uniform(0.5, 0.65) if big else
                         rng.uniform(0.14, 0.2))
    else:
        radius = size * rng.uniform(0.24, 0.4)
    margin = 0 if style == 'hard' else radius * 0.9
    center = (rng.uniform(margin, size - margin),
              rng.uniform(margin, size - margin))
    if style == 'plain':
        mask = shape_mask(shape, hw, center, radius, 0.0)
        pattern = texture(tex, hw, period, rng, angle=0.0)
        img = np.full((size, size, 3), 128.) + rng.normal(0, 6, (size, size,
                                                                 3))
        img = paint(img, mask, pattern, random_colour_pair(rng))
        img += rng.normal(0, 3, img.shape)
        return np.clip(img, 0, 255).astype(np.uint8)
    mask = shape_mask(shape, hw, center, radius, rng.uniform(0, 2 * math.pi))
    pattern = texture(tex, hw, period, rng)
    if style == 'sketch':
        paper = np.full(hw, 245.)
        edges = mask ^ np.asarray(
            Image.fromarray(mask.astype(np.uint8) * 255).filter(
                ImageFilter.MinFilter(3))).astype(bool)
        inner = mask & (np.abs(np.diff(pattern, axis=1, prepend=0)) +
                        np.abs(np.diff(pattern, axis=0, prepend=0)) > 0)
        paper[inner] = 120
        paper[edges] = 25
        paper += rng.normal(0, 4, hw)
        out = np.repeat(paper[..., None], 3, axis=2)
        return np.clip(out, 0, 255).astype(np.uint8)
    if style == 'rendition':
        flat = np.ones((size, size, 3)) * rng.integers(150, 256, 3)
        levels = rng.integers(0, 256, (2, 3)).astype(np.float64) // 64 * 64
        out = paint(flat, mask, pattern, levels + 32)
        outline = mask ^ np.asarray(
            Image.fromarray(mask.astype(np.uint8) * 255).filter(
                ImageFilter.MinFilter(5))).astype(bool)
        out[outline] = 20
        return out.astype(np.uint8)
    colours = random_colour_pair(rng)
    clutter = int(rng.integers(8, 15)) if style == 'hard' else int(
        rng.integers(2, 6))
    img = background(hw, rng, clutter)
    if style == 'hard':
        # Low contrast against the background, and occluding patches.
        colours = 0.5 * colours + 0.5 * img[mask].mean(0) if mask.any() \
            else colours
    img = paint(img, mask, pattern, colours)
    if style == 'hard':
        for _ in range(int(rng.integers(1, 3))):
            x0, y0 = rng.integers(0, size, 2)
            ww, hh = rng.integers(size // 8, size // 3, 2)
            img[y0:y0 + hh, x0:x0 + ww] = rng.integers(0, 256, 3)
    img += rng.normal(0, 3, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def scene(categories, size: int, rng: np.random.Generator,
          max_tries: int = 200):
    """A COCO-style scene: several non-overlapping textured shapes.

    Args:
        categories (Sequence[tuple]): (shape, texture) per category.
        size (int): Image side.
        rng (Generator): Randomness.

    Returns:
        tuple: uint8 image (H, W, 3) and a list of (category index, mask).
    """
    hw = (size, size)
    img = background(hw, rng, int(rng.integers(2, 6)))
    n = int(rng.integers(2, 6))
    placed, objects = [], []
    for _ in range(max_tries):
        if len(objects) == n:
            break
        r = size * rng.uniform(0.08, 0.2)
        c = (rng.uniform(r, size - r), rng.uniform(r, size - r))
        # Disjoint bounding circles (plus a margin): masks never overlap,
        # so each polygon is exactly its object's visible pixels.
        if any(math.hypot(c[0] - p[0], c[1] - p[1]) < r + pr + 2
               for p, pr in placed):
            continue
        cat = int(rng.integers(0, len(categories)))
        shape, tex = categories[cat]
        mask = shape_mask(shape, hw, c, r, rng.uniform(0, 2 * math.pi))
        if mask.sum() < 30:
            continue
        img = paint(img, mask, texture(tex, hw, size / 24, rng),
                    random_colour_pair(rng))
        placed.append((c, r))
        objects.append((cat, mask))
    img += rng.normal(0, 3, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8), objects
