"""document-extractor: the text of a run's file or files (`sys.files`, a file input, a
list-operator's result). Reading goes through `Services.documents`: the shared file store,
keyed by the run's tenant, and the bounded out-of-process parser (OCR for images and scanned
PDFs). Outputs `text` and `pages`: one of each for a file, a list of each for a list of files.
"""

from __future__ import annotations

from typing import Any

from loom_common.dsl.list_nodes import DocumentExtractorData
from loom_orchestrator.engine.context import NodeContext, NodeResult
from loom_orchestrator.engine.node import Node

MAX_FILES = 20  # files read by one node execution


def _files(value: Any, selector: str) -> list[dict[str, Any]]:
    items = value if isinstance(value, list) else [value]
    if not all(isinstance(f, dict) for f in items):
        raise ValueError(f"variable_selector: {selector} does not hold files")
    if len(items) > MAX_FILES:
        raise ValueError(f"variable_selector: {selector} holds {len(items)} files, over the {MAX_FILES} limit")
    return items


class DocumentExtractorNode(Node[DocumentExtractorData]):
    type, version = "document-extractor", "1"

    async def run(self, data: DocumentExtractorData, ctx: NodeContext) -> NodeResult:
        if ctx.services.documents is None:
            raise RuntimeError("no file store configured for document-extractor nodes")
        selector = ".".join(data.variable_selector)
        value = ctx.pool.get(data.variable_selector)
        if value is None:
            raise ValueError(f"variable_selector: nothing at {selector}")
        many = data.is_array_file or isinstance(value, list)
        files = _files(value, selector)
        texts, pages = [], []
        for file in files:
            got = await ctx.services.documents.read_text(ctx.run.tenant_id, file)
            texts.append(got.text)
            pages.append(got.pages)
        names = [str(f.get("filename") or f.get("name") or "") for f in files]
        if many:
            return NodeResult(outputs={"text": texts, "pages": pages}, inputs={"files": names})
        return NodeResult(outputs={"text": texts[0], "pages": pages[0]}, inputs={"files": names})
