"""The files an llm node reads (Dify's `vision`): the run's files at `vision.configs.variable_selector`
(`sys.files` or a file variable), read through `Services.documents` (the shared file store, keyed
by the run's tenant; never a path from the request).

    text-like files   the document text extraction's formats (TXT, MD, CSV, HTML, PDF, DOCX, through
                      the bounded parser) and plain-text data (JSON, XML, YAML..., decoded as
                      UTF-8, at most MAX_PLAIN_BYTES): their text is inlined in the prompt, each cut
                      at MAX_FILE_CHARS and all of them at MAX_TOTAL_CHARS (a cut says so)
    images            sent to the model as images; a model that cannot read images refuses them
                      (inference answers INVALID_ARGUMENT naming `messages.<i>.images.<j>`) and
                      the node fails naming the file and the model: an image is never dropped

Bounds: at most MAX_FILES files, MAX_IMAGES images and MAX_IMAGE_BYTES of images in all (a
Generate request travels as one gRPC message, 4 MiB at most on the inference server).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

from loom_common.errors import PermanentError
from loom_orchestrator.engine.context import NodeContext
from loom_orchestrator.engine.ports import ChatMessage, ImagePart

MAX_FILES = 20
MAX_FILE_CHARS = 20_000
MAX_TOTAL_CHARS = 60_000
MAX_IMAGES = 8
MAX_IMAGE_BYTES = 3 * 1024 * 1024  # all images of one request together

MAX_PLAIN_BYTES = 1024 * 1024

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp"}
# Text the document parser has no format for, but that needs none: read as UTF-8 as it is.
PLAIN_EXTENSIONS = {".json", ".jsonl", ".xml", ".yaml", ".yml", ".log", ".tsv", ".ini", ".toml"}
_IMAGE_FIELD = re.compile(r"messages\.(\d+)\.images\.(\d+)")


@dataclass
class Attached:
    text: str = ""                                   # the text-like files' block for the prompt
    images: list[ImagePart] = field(default_factory=list)
    names: list[str] = field(default_factory=list)   # every file, in order (the node's inputs)


def file_name(file: dict[str, Any]) -> str:
    return str(file.get("filename") or file.get("name") or file.get("upload_file_id") or "file")


def _extension(file: dict[str, Any]) -> str:
    ext = str(file.get("extension") or PurePath(file_name(file)).suffix).lower()
    return "." + ext if ext and not ext.startswith(".") else ext


def is_image(file: dict[str, Any]) -> bool:
    return file.get("type") == "image" or _extension(file) in IMAGE_EXTENSIONS or str(
        file.get("mime_type") or "").startswith("image/")


async def _text(ctx: NodeContext, file: dict[str, Any]) -> str:
    assert ctx.services.documents is not None
    if _extension(file) in PLAIN_EXTENSIONS:
        data = await ctx.services.documents.read_bytes(ctx.run.tenant_id, file, MAX_PLAIN_BYTES)
        return data.decode("utf-8", errors="replace")
    return (await ctx.services.documents.read_text(ctx.run.tenant_id, file)).text


def _files(value: Any, selector: str) -> list[dict[str, Any]]:
    if value is None:
        return []  # no files uploaded this run: the prompt goes as it is, as in Dify
    items = value if isinstance(value, list) else [value]
    if not all(isinstance(f, dict) for f in items):
        raise ValueError(f"vision.configs.variable_selector: {selector} does not hold files")
    if len(items) > MAX_FILES:
        raise ValueError(f"vision.configs.variable_selector: {selector} holds {len(items)} files, "
                         f"over the {MAX_FILES} limit")
    return items


def _cut(text: str, limit: int, name: str) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[... {name} cut at {limit} characters]"


async def gather(ctx: NodeContext, selector: list[str]) -> Attached:
    """Read the files at `selector`: text-like ones to one prompt block, images to image parts."""
    joined = ".".join(selector)
    files = _files(ctx.pool.get(selector), joined)
    out = Attached(names=[file_name(f) for f in files])
    if not files:
        return out
    if ctx.services.documents is None:
        raise RuntimeError("no file store configured for llm nodes that read files")
    blocks: list[str] = []
    total = image_bytes = 0
    for file in files:
        name = file_name(file)
        if is_image(file):
            if len(out.images) >= MAX_IMAGES:
                raise ValueError(f"vision: {name}: at most {MAX_IMAGES} images go to a model at once")
            data = await ctx.services.documents.read_bytes(ctx.run.tenant_id, file, MAX_IMAGE_BYTES - image_bytes)
            image_bytes += len(data)
            out.images.append(ImagePart(data, str(file.get("mime_type") or ""), name))
            continue
        if total >= MAX_TOTAL_CHARS:
            blocks.append(f'[file "{name}" left out: the files\' text is cut at {MAX_TOTAL_CHARS} characters]')
            continue
        text = _cut(_cut(await _text(ctx, file), MAX_FILE_CHARS, name), MAX_TOTAL_CHARS - total, "the files' text")
        total += len(text)
        blocks.append(f'File "{name}":\n{text}')
    out.text = "\n\n".join(blocks)
    return out


def attach(messages: list[ChatMessage], files: Attached) -> None:
    """The files go with the last user message (Dify's place for them), or a new one at the end."""
    if not files.text and not files.images:
        return
    target = next((m for m in reversed(messages) if m.role == "user"), None)
    if target is None:
        target = ChatMessage("user", "")
        messages.append(target)
    if files.text:
        target.content = f"{target.content}\n\n{files.text}" if target.content else files.text
    target.images.extend(files.images)


def refusal(exc: PermanentError, messages: list[ChatMessage], model: str) -> Exception | None:
    """The node's error when the model refused the images (else None: the error stays as it is)."""
    found = _IMAGE_FIELD.search(str(exc))
    if found is None:
        return None
    i, j = int(found.group(1)), int(found.group(2))
    images = messages[i].images if i < len(messages) else []
    name = images[j].name if j < len(images) else "an image"
    if "cannot read images" in str(exc):
        return PermanentError(f'vision: the image file "{name}" cannot be sent to model {model}: it does not read '
                              f"images (use a vision-capable model or turn vision off). {exc}",
                              code="model_not_vision")
    return PermanentError(f'vision: the image file "{name}" was refused for model {model}: {exc}', code="bad_image")
