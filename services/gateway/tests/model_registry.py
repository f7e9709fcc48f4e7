"""A loopback Ollama-style model registry serving one tiny GGUF as `tiny` (its manifest and
its blob): what an inference process started with `LOOM_INFERENCE_REGISTRY_URL=<url>` pulls
when asked for `tiny`, so a pull's progress is real and no test leaves the machine. The blob
is a few MiB, so the engine reports several progress steps (it reads 1 MiB at a time)."""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from loom_common.devstack import infra
from loom_common.testing import write_header_only_gguf

MODEL = "tiny"


class TinyRegistry:
    def __init__(self, root: Path, size_mib: int = 4) -> None:
        blob_path = root / "tiny.gguf"
        write_header_only_gguf(blob_path, {"general.architecture": "gemma3", "general.file_type": 15,
                                       "general.size_label": "1M"}, padding=size_mib << 20)
        self.blob = blob_path.read_bytes()
        self.digest = hashlib.sha256(self.blob).hexdigest()
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _send(self, body: bytes) -> None:
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path == f"/v2/library/{MODEL}/manifests/latest":
                    self._send(json.dumps({"schemaVersion": 2, "layers": [
                        {"mediaType": "application/vnd.ollama.image.model", "digest": f"sha256:{registry.digest}",
                         "size": len(registry.blob)}]}).encode())
                elif self.path == f"/v2/library/{MODEL}/blobs/sha256:{registry.digest}":
                    self._send(registry.blob)
                else:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()

        self.port = infra.free_port()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
