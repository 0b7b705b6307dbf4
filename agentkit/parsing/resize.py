"""``smart_resize``: the size Qwen2-VL / Qwen2.5-VL (and UI-TARS-1.5) actually show the model.

Qwen2.5-VL and UI-TARS-1.5 answer in pixels of the *resized* image, not of the frame a source
captured, so a caller needs that size to normalize their coordinates. This is the same arithmetic as
``transformers.models.qwen2_vl.image_processing_qwen2_vl.smart_resize`` (kept here so parsing does not
import transformers), checked against it in the tests when transformers is installed.
"""

from __future__ import annotations

import math

# The defaults of transformers' Qwen2-VL image processor (min 4 patches of 28, max 1280 of them).
DEFAULT_FACTOR = 28
DEFAULT_MIN_PIXELS = 56 * 56
DEFAULT_MAX_PIXELS = 14 * 14 * 4 * 1280


def smart_resize(
    height: int,
    width: int,
    factor: int = DEFAULT_FACTOR,
    min_pixels: int = DEFAULT_MIN_PIXELS,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> tuple[int, int]:
    """Return ``(height, width)`` the Qwen2-VL family resizes an image to.

    Both sides become multiples of ``factor``, the pixel count lands in ``[min_pixels, max_pixels]``
    and the aspect ratio is kept as closely as possible.

    Note the order: this takes and returns ``(height, width)`` like transformers, while
    :func:`~agentkit.parsing.parse_response` takes ``resized_size=(width, height)``.

    Example:
        >>> smart_resize(1080, 1920)
        (728, 1316)
        >>> h, w = smart_resize(480, 640); (w, h)  # resized_size for parse_response
        (644, 476)

    Raises:
        ValueError: a side is not positive, or the aspect ratio exceeds 200 (as transformers does).
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"height and width must be positive, got {height}x{width}")
    if max(height, width) / min(height, width) > 200:
        ratio = max(height, width) / min(height, width)
        raise ValueError(f"absolute aspect ratio must be smaller than 200, got {ratio}")
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar
