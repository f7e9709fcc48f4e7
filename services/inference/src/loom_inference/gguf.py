"""Read a GGUF file's metadata header (no tensors, no llama.cpp): family, quantization, size.

GGUF v2/v3 layout: magic "GGUF", u32 version, u64 tensor count, u64 kv count, then kv pairs
(string key, u32 type, value). Arrays are skipped except for their length.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO

_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
STRING, ARRAY = 8, 9

# general.file_type -> the quantization name llama.cpp prints.
FILE_TYPES = {0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
              11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
              17: "Q5_K_M", 18: "Q6_K", 32: "BF16"}


class NotGguf(ValueError):
    pass


def _read(f: BinaryIO, fmt: str):
    size = struct.calcsize(fmt)
    data = f.read(size)
    if len(data) != size:
        raise NotGguf("truncated header")
    return struct.unpack(fmt, data)[0]


def _string(f: BinaryIO) -> str:
    n = _read(f, "<Q")
    if n > 1 << 24:
        raise NotGguf("implausible string length")
    return f.read(n).decode("utf-8", errors="replace")


def _value(f: BinaryIO, vtype: int, keep: bool):
    if vtype in _SCALARS:
        return _read(f, _SCALARS[vtype])
    if vtype == STRING:
        return _string(f)
    if vtype == ARRAY:
        itype, n = _read(f, "<I"), _read(f, "<Q")
        if itype in _SCALARS:
            f.seek(struct.calcsize(_SCALARS[itype]) * n, 1)
        else:
            for _ in range(n):
                _value(f, itype, False)
        return f"[{n} items]"
    raise NotGguf(f"unknown value type {vtype}")


def read_metadata(path: str | Path) -> dict[str, object]:
    with open(path, "rb") as f:
        if f.read(4) != b"GGUF":
            raise NotGguf(f"{path} is not a GGUF file")
        version = _read(f, "<I")
        if version < 2:
            raise NotGguf(f"GGUF version {version} is too old")
        _read(f, "<Q")
        n_kv = _read(f, "<Q")
        out: dict[str, object] = {}
        for _ in range(n_kv):
            key = _string(f)
            out[key] = _value(f, _read(f, "<I"), True)
        return out


def describe(meta: dict[str, object]) -> dict[str, str]:
    """family, quantization, parameter size, kind (chat / embedding) from metadata."""
    arch = str(meta.get("general.architecture", ""))
    ft = meta.get("general.file_type")
    pooling = meta.get(f"{arch}.pooling_type")
    kind = "embedding" if arch in ("bert", "nomic-bert", "jina-bert-v2") or pooling not in (None, 0) else "chat"
    return {"family": arch, "quantization": FILE_TYPES.get(int(ft), str(ft)) if isinstance(ft, int) else "",
            "parameter_size": str(meta.get("general.size_label", "")), "kind": kind}

