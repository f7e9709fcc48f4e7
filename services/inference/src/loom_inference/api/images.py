"""Images in a request (Ollama's base64 `images`, OpenAI's `image_url` parts, gRPC's raw bytes) -> checked
bytes.

Bounded before anything is decoded: at most MAX_IMAGES per request and MAX_IMAGE_BYTES per
image (its base64 length is checked first, so an oversized one costs no decoding). Large
ones are decoded on a worker thread, off the event loop. Only data carried in the request is
read: a remote `http(s)://` image URL is refused naming its field (this engine fetches no
URL on a caller's behalf; the client sends the bytes). The bytes must start like an image
format llama.cpp's loader reads, so a stray text or archive fails here as a 400, not inside
the projector.
"""

from __future__ import annotations

import asyncio
import base64
import binascii

from loom_inference.engine.types import Image, InvalidRequest

MAX_IMAGES = 8                      # per request, all messages together
MAX_IMAGE_BYTES = 10 * 1024 * 1024  # per decoded image
_OFF_LOOP_CHARS = 64 * 1024         # base64 longer than this is decoded on a worker thread

_MAGIC = {b"\x89PNG\r\n\x1a\n": "image/png", b"\xff\xd8\xff": "image/jpeg", b"GIF87a": "image/gif",
          b"GIF89a": "image/gif", b"BM": "image/bmp"}


def _mime(data: bytes) -> str | None:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return next((mime for magic, mime in _MAGIC.items() if data.startswith(magic)), None)


def _b64decode(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


async def decode_base64(text: str, field: str) -> Image:
    """One image as base64 (Ollama's form; a `data:` URL prefix is taken off too)."""
    if text.startswith("data:"):
        header, sep, text = text.partition(",")
        if not sep or not header.endswith(";base64"):
            raise InvalidRequest("a data: URL image must be base64 (data:image/png;base64,...)", field)
    text = "".join(text.split())  # line-wrapped base64 is still base64
    if len(text) > (MAX_IMAGE_BYTES + 2) // 3 * 4:
        raise InvalidRequest(f"an image may be at most {MAX_IMAGE_BYTES // (1024 * 1024)} MiB", field)
    try:
        data = await asyncio.to_thread(_b64decode, text) if len(text) > _OFF_LOOP_CHARS else _b64decode(text)
    except (binascii.Error, ValueError) as exc:
        raise InvalidRequest("is not valid base64", field) from exc
    mime = _mime(data)
    if mime is None:
        raise InvalidRequest("is not a PNG, JPEG, GIF, WebP or BMP image", field)
    return Image(data, field, mime)


def from_bytes(data: bytes, field: str) -> Image:
    """An image sent as raw bytes (gRPC's `ChatMessage.images`): the same bounds and format check."""
    if len(data) > MAX_IMAGE_BYTES:
        raise InvalidRequest(f"an image may be at most {MAX_IMAGE_BYTES // (1024 * 1024)} MiB", field)
    mime = _mime(data)
    if mime is None:
        raise InvalidRequest("is not a PNG, JPEG, GIF, WebP or BMP image", field)
    return Image(data, field, mime)


async def decode_url(url: str, field: str) -> Image:
    """An OpenAI `image_url.url`: a data: URL is decoded; a remote URL is refused, not fetched."""
    if url.startswith("data:"):
        return await decode_base64(url, field)
    if url.startswith(("http://", "https://")):
        raise InvalidRequest("remote image URLs are not fetched by this engine; send the image inline as a "
                             "data: URL (data:image/png;base64,...)", field)
    raise InvalidRequest("must be a data: URL (data:image/png;base64,...)", field)


class ImageBudget:
    """Counts a request's images across its messages; the first beyond MAX_IMAGES is a 400
    naming its field."""

    def __init__(self) -> None:
        self.count = 0

    def take(self, field: str) -> None:
        self.count += 1
        if self.count > MAX_IMAGES:
            raise InvalidRequest(f"a request may carry at most {MAX_IMAGES} images", field)
