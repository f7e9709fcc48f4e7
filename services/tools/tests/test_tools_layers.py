"""Transport stays at the edge: only `loom_tools.api` and the composition root import
grpc, FastAPI, FastStream or generated protobuf code; the sandbox's in-box files use only
the standard library."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import loom_tools

SRC = Path(loom_tools.__file__).parent
TRANSPORT = ("grpc", "fastapi", "faststream", "google.protobuf", "loom.")
EDGE = {"api", "app.py", "main.py"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def test_tools_domain_imports_no_transport():
    offenders = []
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC)
        if rel.parts[0] in EDGE:
            continue
        bad = [n for n in _imports(path) if n.startswith(TRANSPORT) or n in ("grpc", "loom")]
        if bad:
            offenders.append((str(rel), bad))
    assert offenders == []


def test_tools_sandbox_inbox_files_use_stdlib_only():
    for name in ("harness.py", "launch.py"):
        tops = {n.split(".")[0] for n in _imports(SRC / "sandbox" / name)}
        assert tops <= set(sys.stdlib_module_names), (name, tops - set(sys.stdlib_module_names))
