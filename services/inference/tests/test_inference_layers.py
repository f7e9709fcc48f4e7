"""House rules that are cheap to check: the engine core imports no transport, no protobuf and
no model library; llama_cpp is imported by backends/llamacpp.py only; modules stay small and
open with a docstring."""

from __future__ import annotations

import ast
from pathlib import Path

import loom_inference

ROOT = Path(loom_inference.__file__).parent
FORBIDDEN_IN_CORE = {"fastapi", "grpc", "faststream", "loom", "llama_cpp", "starlette", "httpx"}


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_inference_engine_core_imports_no_transport_or_model_library() -> None:
    for path in (ROOT / "engine").glob("*.py"):
        assert not (_imports(path) & FORBIDDEN_IN_CORE), path.name


def test_inference_only_the_llamacpp_backends_import_llama_cpp() -> None:
    importers = {p.relative_to(ROOT).as_posix() for p in ROOT.rglob("*.py") if "llama_cpp" in _imports(p)}
    assert importers == {"backends/llamacpp.py", "backends/llamacpp_vision.py"}  # text (batched) and vision


def test_inference_modules_are_small_and_documented() -> None:
    for path in ROOT.rglob("*.py"):
        text = path.read_text()
        assert len(text.splitlines()) <= 400, path
        if text.strip():
            assert ast.get_docstring(ast.parse(text)), f"{path} has no module docstring"
