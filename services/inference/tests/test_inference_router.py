"""The model router with fake and remote backends: name resolution, per-model concurrency
limits, fallbacks on overload and failure, lazy vLLM, the OpenAI-compatible and Ollama
remotes against loopback fake servers, config.toml + env precedence, GPU pinning."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import AsyncIterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from loom_common.devstack import infra
from loom_inference.backends import llamacpp
from loom_inference.engine.types import (
    BackendError,
    ChatMessage,
    Delta,
    FinishReason,
    GenerateRequest,
    ModelInfo,
    ModelNotFound,
    Overloaded,
    SamplingParams,
    ToolSpec,
    Usage,
)
from loom_inference.router.factory import build_backend, build_router
from loom_inference.router.router import Router
from loom_inference.settings import InferenceSettings, ModelRoute


class Canned:
    def __init__(self, name: str, fail: bool = False) -> None:
        self.info = ModelInfo(name, "fake", loaded=True)
        self.fail = fail
        self.gate = None

    async def start(self) -> None: ...
    async def close(self) -> None: ...

    def load(self):
        return (0, 0)

    async def generate(self, req) -> AsyncIterator[Delta]:
        if self.fail:
            raise BackendError("down")
        if self.gate is not None:
            await self.gate.wait()
        yield Delta(text=f"from {self.info.name}")
        yield Delta(finish_reason=FinishReason.STOP, usage=Usage(1, 1))


async def _text(router: Router, model: str) -> tuple[str, str]:
    out = [d async for d in router.generate(GenerateRequest(model=model, prompt="x"))]
    return "".join(d.text for d in out), out[-1].model


async def test_inference_router_fallbacks_and_concurrency_limits() -> None:
    import asyncio

    router = Router()
    primary, spare, broken = Canned("primary"), Canned("spare"), Canned("broken", fail=True)
    router.add(primary, max_concurrency=1, fallbacks=["spare"])
    router.add(spare)
    router.add(broken, fallbacks=["spare"])
    assert await _text(router, "primary") == ("from primary", "primary")
    assert await _text(router, "broken") == ("from spare", "spare")  # failure -> fallback
    primary.gate = asyncio.Event()
    first = asyncio.create_task(_text(router, "primary"))
    await asyncio.sleep(0.01)
    assert await _text(router, "primary") == ("from spare", "spare")  # at its limit -> fallback
    primary.gate.set()
    assert (await first)[1] == "primary"
    lonely = Router()
    lonely.add(Canned("solo"), max_concurrency=1)
    lonely.routes["solo"].active = 1
    with pytest.raises(Overloaded):
        await _text(lonely, "solo")
    with pytest.raises(ModelNotFound):
        await _text(router, "nope")


def test_inference_vllm_route_is_lazy_and_device_pinned(monkeypatch) -> None:
    sys.modules.pop("vllm", None)
    backend = build_backend(ModelRoute(name="big", backend="vllm", device="cuda:1"), InferenceSettings())
    assert "vllm" not in sys.modules and backend.info.backend == "vllm"  # nothing imported until used
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert llamacpp.pin_device("cuda:1") == 0
    import os

    assert os.environ["CUDA_VISIBLE_DEVICES"] == "1"


async def test_inference_vllm_missing_falls_back(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "vllm", None)  # not installed on this CPU machine
    router = Router()
    router.add(build_backend(ModelRoute(name="big", backend="vllm"), InferenceSettings()), fallbacks=["small"])
    router.add(Canned("small"))
    assert await _text(router, "big") == ("from small", "small")


class _Remote:
    """A loopback OpenAI-compatible + Ollama server that records what it was sent."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        outer = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.bodies.append(body)
                if self.path == "/v1/chat/completions":
                    events = [{"choices": [{"delta": {"content": "Hel"}}]}, {"choices": [{"delta": {"content": "lo"}}]}]
                    if body.get("tools"):
                        events = [{"choices": [{"delta": {"tool_calls": [{"index": 0, "id": "c1", "function": {
                            "name": "f", "arguments": '{"a": '}}]}}]},
                                  {"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {
                                      "arguments": "1}"}}]}}]}]
                    events.append({"choices": [{"delta": {}, "finish_reason": "tool_calls" if body.get("tools")
                                                else "stop"}]})
                    events.append({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}})
                    data = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
                    ctype = "text/event-stream"
                elif self.path == "/api/chat":
                    lines = [{"message": {"role": "assistant", "content": "Hi"}, "done": False},
                             {"message": {"role": "assistant", "content": ""}, "done": True, "done_reason": "stop",
                              "prompt_eval_count": 4, "eval_count": 1, "total_duration": 5_000_000}]
                    data = "".join(json.dumps(x) + "\n" for x in lines)
                    ctype = "application/x-ndjson"
                else:
                    self.send_response(429)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                raw = data.encode()
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.port = infra.free_port()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), H)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def remote():
    server = _Remote()
    yield server
    server.httpd.shutdown()


async def test_inference_openai_remote_and_model_api_url(remote) -> None:
    settings = InferenceSettings(model_api_url=f"http://127.0.0.1:{remote.port}/v1", model_api_key="k")
    router = build_router(settings)
    # a name no route claims goes to MODEL_API_URL
    req = GenerateRequest(model="gpt-4o-mini", prompt="x", sampling=SamplingParams(temperature=0, max_tokens=5))
    out = [d async for d in router.generate(req)]
    assert "".join(d.text for d in out) == "Hello" and out[-1].usage.completion_tokens == 2
    assert remote.bodies[-1]["model"] == "gpt-4o-mini" and remote.bodies[-1]["max_tokens"] == 5
    req.tools = [ToolSpec("f", "", {"type": "object"})]
    out = [d async for d in router.generate(req)]
    assert out[-1].finish_reason == FinishReason.TOOL_CALLS and json.loads(out[-1].tool_calls[0].arguments_json) == {
        "a": 1}
    await router.close()


async def test_inference_ollama_remote(remote) -> None:
    backend = build_backend(ModelRoute(name="llama3", backend="ollama", url=f"http://127.0.0.1:{remote.port}"),
                            InferenceSettings())
    req = GenerateRequest(model="llama3", prompt="x", json_schema='{"type": "object"}',
                          sampling=SamplingParams(max_tokens=7))
    out = [d async for d in backend.generate(req)]
    assert out[0].text == "Hi" and out[-1].usage.prompt_tokens == 4 and out[-1].timings.total_ms == 5.0
    assert remote.bodies[-1]["options"]["num_predict"] == 7 and remote.bodies[-1]["format"] == {"type": "object"}
    await backend.close()


def test_inference_config_toml_with_env_override(tmp_path, monkeypatch) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text('[network]\nbind_address = "0.0.0.0"\nport = 12345\ncors_origins = ["http://x"]\n'
                   '[performance]\nmax_parallel = 4\nflash_attention = true\n'
                   '[[models]]\nname = "remote"\nbackend = "openai"\nurl = "http://r/v1"\nmax_concurrency = 2\n'
                   'fallbacks = ["gemma3:270m"]\n')
    monkeypatch.setenv("LOOM_INFERENCE_CONFIG", str(cfg))
    s = InferenceSettings()
    assert (s.http_host, s.http_port, s.network.cors_origins) == ("0.0.0.0", 12345, ["http://x"])
    assert s.performance.max_parallel == 4 and s.performance.flash_attention
    monkeypatch.setenv("LOOM_INFERENCE_PERFORMANCE__MAX_PARALLEL", "2")
    monkeypatch.setenv("LOOM_INFERENCE_HTTP_PORT", "999")
    s = InferenceSettings()
    assert s.performance.max_parallel == 2 and s.http_port == 999 and s.performance.flash_attention
    router = build_router(s)
    assert router.resolve("remote").max_concurrency == 2 and router.resolve("remote").fallbacks == ["gemma3:270m"]


async def test_start_loads_models_one_after_another_in_order() -> None:
    """The chat model loads alone first: side by side, the embedding model's import held the GIL
    and stalled the chat model's first answer for seconds."""
    import asyncio

    log: list[str] = []

    class Loading(Canned):
        def __init__(self, name: str, fail: bool = False) -> None:
            super().__init__(name)
            self.fail_load = fail

        async def start(self) -> None:
            log.append(f"start {self.info.name}")

        async def ready(self) -> None:
            await asyncio.sleep(0.05)
            log.append(f"loaded {self.info.name}")
            if self.fail_load:
                raise BackendError("weights missing")

    router = Router()
    for name, fail in (("chat", True), ("embed", False)):
        router.add(Loading(name, fail))
    await router.start(["chat", "nowhere", "embed"])  # a failed or unknown model does not stop the rest
    assert log == ["start chat", "loaded chat", "start embed", "loaded embed"]


async def test_inference_vllm_tools_decode_under_the_call_schema_and_hand_back_a_call(monkeypatch) -> None:
    """The vLLM backend's tool path without a GPU: vLLM's modules stubbed, its engine scripted."""
    import types

    class Params:
        def __init__(self, **kw):
            self.kw = kw

    fake = types.ModuleType("vllm")
    fake.SamplingParams = Params
    guided = types.ModuleType("vllm.sampling_params")
    guided.GuidedDecodingParams = lambda json: {"json": json}
    monkeypatch.setitem(sys.modules, "vllm", fake)
    monkeypatch.setitem(sys.modules, "vllm.sampling_params", guided)
    raw = '{"name": "get_weather", "arguments": {"city": "Oslo"}}'
    seen = {}

    class Engine:  # what AsyncLLM.generate yields: cumulative text, then finished
        async def get_tokenizer(self):
            return types.SimpleNamespace(apply_chat_template=lambda msgs, **kw: "|".join(m["content"] for m in msgs))

        async def generate(self, prompt, params, request_id):
            seen.update(prompt=prompt, params=params.kw)
            for end in range(8, len(raw) + 8, 8):
                done = end >= len(raw)
                out = types.SimpleNamespace(text=raw[:end], finish_reason="stop" if done else None, token_ids=[1] * 9)
                yield types.SimpleNamespace(outputs=[out], finished=done, prompt_token_ids=[1, 2])

    backend = build_backend(ModelRoute(name="big", backend="vllm"), InferenceSettings())
    backend._engine = Engine()
    tool = ToolSpec("get_weather", "Weather of a city", {"type": "object", "properties": {"city": {"type": "string"}}})
    req = GenerateRequest(model="big", messages=[ChatMessage("user", "Weather in Oslo?")], tools=[tool],
                          tool_choice="required")
    out = [d async for d in backend.generate(req)]
    assert seen["params"]["guided_decoding"]["json"]["properties"]["name"] == {"const": "get_weather"}
    assert seen["prompt"].startswith("You can call these tools.") and seen["prompt"].endswith("Weather in Oslo?")
    assert "".join(d.text for d in out) == ""  # the envelope is not text
    assert out[-1].finish_reason == FinishReason.TOOL_CALLS
    assert [(c.name, json.loads(c.arguments_json)) for c in out[-1].tool_calls] == [("get_weather", {"city": "Oslo"})]


def test_a_gguf_chat_template_renders_on_a_budget() -> None:
    """A chat template is code from whoever made the model file: a hostile one is refused as a
    400 naming `messages`, within its time limit, instead of stalling the service (issue 18)."""
    from loom_inference.engine.types import ChatMessage, InvalidRequest
    from loom_inference.prompting.templates import renderer_for

    ok, _ = renderer_for({}, "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}")
    assert ok([ChatMessage("user", "hi")]) == "<user>hi"
    for hostile in ("{{ 'a' * 100000000 }}",
                    "{% for a in range(10000) %}{% for b in range(10000) %}{% endfor %}{% endfor %}"):
        render, _ = renderer_for({}, hostile)
        with pytest.raises(InvalidRequest) as err:
            render([ChatMessage("user", "hi")])
        assert err.value.field == "messages" and "chat template" in str(err.value)
