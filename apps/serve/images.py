"""Images in requests -> RGB frames, within the server's limits.

A data URL (``data:image/jpeg;base64,...``) is decoded in memory; an ``http(s)://`` URL is fetched (when
allowed) with a time limit and a size cap enforced while reading. The pixel limit is checked from the image
header, before the pixels are decoded, so a decompression bomb costs nothing. Every failure is a
:class:`~agentkit.apps.serve.errors.ServeError` (400 or 413) naming the message and part it came from.
"""

from __future__ import annotations

import base64
import binascii
import io
import warnings
from dataclasses import dataclass

import numpy as np

from agentkit.apps.serve.errors import ServeError


@dataclass(frozen=True)
class ImageLimits:
    max_bytes: int
    max_pixels: int
    allow_urls: bool = True
    timeout_s: float = 10.0


def decode_bytes(data: bytes, limits: ImageLimits, where: str = "image") -> np.ndarray:
    """Encoded image bytes (JPEG, PNG, WebP, ...) -> ``H x W x 3`` uint8 RGB.

    Raises:
        ServeError: 413 ``image_too_large`` (bytes or pixels over the limits), 400 ``invalid_image``.
    """
    from PIL import Image

    if len(data) > limits.max_bytes:
        raise ServeError(
            413, "image_too_large", f"{where}: {len(data)} bytes, more than the limit of {limits.max_bytes}"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
            w, h = im.size
            if w * h > limits.max_pixels:
                raise ServeError(
                    413, "image_too_large", f"{where}: {w}x{h} pixels, more than the limit of {limits.max_pixels}"
                )
            rgb = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except ServeError:
        raise
    except Image.UnidentifiedImageError:
        raise ServeError(400, "invalid_image", f"{where}: not an image in a known format") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombWarning, Image.DecompressionBombError) as e:
        raise ServeError(400, "invalid_image", f"{where}: not a decodable image ({str(e).splitlines()[0]})") from None
    if rgb.ndim != 3 or rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise ServeError(400, "invalid_image", f"{where}: empty image")
    return np.ascontiguousarray(rgb)


def decode_data_url(url: str, limits: ImageLimits, where: str = "image") -> np.ndarray:
    """``data:image/...;base64,...`` (or bare base64) -> RGB."""
    payload = url
    if url.startswith("data:"):
        head, sep, payload = url.partition(",")
        if not sep or ";base64" not in head:
            raise ServeError(400, "invalid_image", f"{where}: only base64 data URLs are accepted")
        if not head[5:].startswith("image/"):
            raise ServeError(400, "invalid_image", f"{where}: data URL of type {head[5:].split(';')[0]!r}, not image/*")
    if len(payload) * 3 // 4 > limits.max_bytes + 3:  # checked before decoding
        raise ServeError(
            413,
            "image_too_large",
            f"{where}: about {len(payload) * 3 // 4} bytes, more than the limit of {limits.max_bytes}",
        )
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ServeError(400, "invalid_image", f"{where}: the data URL is not valid base64") from None
    return decode_bytes(data, limits, where)


async def fetch_image(url: str, limits: ImageLimits, where: str = "image") -> np.ndarray:
    """Fetch an ``http(s)://`` image (streamed, capped at ``max_bytes``) and decode it."""
    import httpx

    if not limits.allow_urls:
        raise ServeError(
            400, "image_url_not_allowed", f"{where}: image URLs are disabled on this server; send a data URL"
        )
    buf = bytearray()
    try:
        async with httpx.AsyncClient(timeout=limits.timeout_s, follow_redirects=True) as client:
            async with client.stream("GET", url) as resp:
                if resp.status_code != 200:
                    raise ServeError(400, "image_fetch_failed", f"{where}: GET {url} returned HTTP {resp.status_code}")
                async for part in resp.aiter_bytes():
                    buf += part
                    if len(buf) > limits.max_bytes:
                        raise ServeError(
                            413,
                            "image_too_large",
                            f"{where}: {url} is larger than the limit of {limits.max_bytes} bytes",
                        )
    except httpx.HTTPError as e:
        raise ServeError(400, "image_fetch_failed", f"{where}: cannot fetch {url}: {type(e).__name__}") from None
    return decode_bytes(bytes(buf), limits, where)


async def load_image(url: str, limits: ImageLimits, where: str = "image") -> np.ndarray:
    """A request's image reference (data URL, bare base64 or ``http(s)://`` URL) -> RGB."""
    if url.startswith(("http://", "https://")):
        return await fetch_image(url, limits, where)
    if url.startswith("data:") or not url.startswith(("file:", "ftp:", "/")):
        return decode_data_url(url, limits, where)
    raise ServeError(400, "invalid_image", f"{where}: unsupported image reference (use a data URL or http(s) URL)")


__all__ = ["ImageLimits", "decode_bytes", "decode_data_url", "fetch_image", "load_image"]
