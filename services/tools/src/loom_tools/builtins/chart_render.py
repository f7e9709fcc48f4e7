"""The child side of `chart.render`: a Vega-Lite spec (with its data inlined) to SVG or PNG.

Run by `loom_common.bounded` in a limited child process (`chart.py`), never in the service:
vl-convert embeds a JavaScript engine, and a spec is untrusted input (a huge `sequence`
generator, a transform that loops) whose CPU and memory must die with the child.
"""

from __future__ import annotations

import base64
import json
import resource


def render(data: bytes, *, fmt: str, data_mb: int) -> str:
    """The chart as text: SVG markup, or a PNG in base64."""
    # V8 reserves a large address space (so RLIMIT_AS cannot bound it) but commits its heap as
    # private writable memory, which RLIMIT_DATA counts: set before the engine loads.
    resource.setrlimit(resource.RLIMIT_DATA, (data_mb * 2**20,) * 2)
    import vl_convert  # imported in the child only

    spec = json.loads(data)
    if fmt == "svg":
        return vl_convert.vegalite_to_svg(spec, allowed_base_urls=[])
    return base64.b64encode(vl_convert.vegalite_to_png(spec, scale=1, allowed_base_urls=[])).decode()
