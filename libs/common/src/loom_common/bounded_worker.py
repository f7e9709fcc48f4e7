"""The child side of `loom_common.bounded` (run as `python -I -B -m loom_common.bounded_worker`).

Usage: bounded_worker MODULE:FUNCTION MEMORY_MB CPU_S OPTIONS_JSON < data
Limits itself before importing or reading anything untrusted, then writes one JSON object on
stdout: {"ok": true, "text": ...} or {"ok": false, "error": ..., "kind": "memory" | "error"}.
An exception's `message` attribute (Loom's errors carry one) is preferred to its str().
"""

import importlib
import json
import resource
import sys


def _limit(memory_mb: int, cpu_s: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (memory_mb * 2**20,) * 2)
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def main() -> None:
    target, memory_mb, cpu_s, options = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), json.loads(sys.argv[4])
    _limit(memory_mb, cpu_s)
    out = sys.stdout
    try:
        module_name, _, function_name = target.partition(":")
        function = getattr(importlib.import_module(module_name), function_name)
        data = sys.stdin.buffer.read()
        text = function(data, **options)
        report = {"ok": True, "text": text}
    except MemoryError:
        report = {"ok": False, "kind": "memory", "error": "out of memory"}
    except Exception as exc:  # every parser error is an answer, never a crash
        why = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
        report = {"ok": False, "kind": "error", "error": str(why)[:1000]}
    try:
        out.write(json.dumps(report))
    except MemoryError:
        out.write(json.dumps({"ok": False, "kind": "memory", "error": "out of memory"}))
    out.flush()


if __name__ == "__main__":
    main()
