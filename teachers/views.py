"""Augmented views: a crop box and a flip per (seed, manifest position, view), fixed before any model runs.

The parameters are stored with the cached targets, so the student later sees exactly the pixels
the teacher saw, at its own resolution (as FKD stores crop coordinates).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image

from subsets.errors import InputError


@dataclass(frozen=True)
class ViewPolicy:
    views: int = 2  # views per image
    scale: tuple[float, float] = (0.35, 1.0)  # crop area as a share of the image
    ratio: tuple[float, float] = (3 / 4, 4 / 3)  # crop aspect ratio
    flip: float = 0.5  # probability of a horizontal flip
    full_first: bool = True  # view 0 is the whole image, unflipped (the centre crop at any resolution)
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def view_params(policy: ViewPolicy, position: int, view: int) -> np.ndarray:
    """(x0, y0, x1, y1, flip) in relative coordinates; the same inputs always give the same view."""
    if view == 0 and policy.full_first:
        return np.array([0.0, 0.0, 1.0, 1.0, 0.0], dtype=np.float32)
    rng = np.random.default_rng([policy.seed, position, view])
    for _ in range(10):  # RandomResizedCrop's sampling, in relative units
        area = rng.uniform(*policy.scale)
        ratio = math.exp(rng.uniform(math.log(policy.ratio[0]), math.log(policy.ratio[1])))
        w, h = math.sqrt(area * ratio), math.sqrt(area / ratio)
        if w <= 1 and h <= 1:
            break
    else:
        w = h = math.sqrt(policy.scale[1])
    x0, y0 = rng.uniform(0, 1 - w), rng.uniform(0, 1 - h)
    flip = float(rng.uniform() < policy.flip)
    return np.array([x0, y0, x0 + w, y0 + h, flip], dtype=np.float32)


def views_for(policy: ViewPolicy, position: int) -> np.ndarray:
    return np.stack([view_params(policy, position, v) for v in range(policy.views)])


def apply_view(image: Image.Image, params: np.ndarray, resolution: int) -> Image.Image:
    """Crop, flip and resize an image to resolution x resolution as the stored view says."""
    x0, y0, x1, y1, flip = (float(v) for v in params)
    w, h = image.size
    box = (round(x0 * w), round(y0 * h), round(x1 * w), round(y1 * h))
    if box[2] - box[0] < 1 or box[3] - box[1] < 1 or resolution < 1:
        raise InputError(f"view {params.tolist()} of a {w}x{h} image cannot be shown at {resolution} px")
    out = image.crop(box).resize((resolution, resolution), Image.Resampling.BICUBIC)
    return out.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if flip else out
