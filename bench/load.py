"""Load test: a mixed load against a running Loom for a given time, as the seed advises (Locust,
driven as a library), and what it sustained: throughput, error rate and latency percentiles
per kind of request.

    chat        Dify `POST /v1/chat-messages`, streaming, on a chatflow (start -> llm -> answer,
                a few tokens): `chat stream` is the whole stream, `chat ttft` its first token
    workflow    `POST /v1/workflows/run`, blocking, on a workflow (start -> template -> end)
    retrieval   `POST /v1/datasets/{id}/retrieve` (hybrid search, top 3) on a small dataset
    upload      `POST /v1/datasets/{id}/document/create-by-file` (a small Markdown file; the
                ingestion, embedding included, runs behind it on the bus)

    .venv/bin/python bench/load.py --quick                     # its own stack, ~2 minutes
    .venv/bin/python bench/load.py --duration 300 --users 16   # its own stack, 5 minutes
    .venv/bin/python bench/load.py --url https://127.0.0.1:8080 --ca-file .loom/tls/ca.pem \\
        --email admin@example.com --password '...' --duration 600 --users 32   # a running stack

Without --url it starts its own stack (embedded NATS and Postgres, every service as a process,
as bench/gateway.py does). With --url it signs in to the console API with --email/--password
and creates what it needs (two apps with keys, a dataset with a dataset key and one document).

`--mode` picks the mix (MODES below): a mode is a name, the weight of each task and a default
number of users, nothing else.

    streams     200 users, each holding one streaming chat after another (`chat` alone). With
                its own stack the chat model is the inference service's fake route (`--model
                fake`, the default in this mode: no model, tokens paced at `--token-gap` s, so a
                stream lasts ~`--stream-tokens` x gap, long enough for all users to hold theirs
                at once) and the stack is sized for the users: orchestrator slots
                (LOOM_ORCHESTRATOR_MAX_CONCURRENT_RUNS) and the engine's max_parallel/max_waiting.
                `--model bundled` runs it on the real model (50 users: `--users 50`).

    .venv/bin/python bench/load.py --mode streams --quick                  # 200 streams, ~2 minutes
    .venv/bin/python bench/load.py --mode streams --model bundled --users 50 --quick

The last line printed is one JSON object: per kind {requests, failures, error_rate, rps, p50_ms,
p95_ms, p99_ms, max_ms}, the totals, `streams_held` (the most streams open at once, each past its
first token), TTFT p50/p95 and, with its own stack, each process's peak RSS and CPU use.

Locust patches the standard library with gevent when imported, which neither asyncio nor the
stack's own start-up tolerate: the load itself runs in a child process (this file again, with
--locust-child), which prints Locust's statistics as JSON for the parent to report.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from benchkit import BUNDLED_CHAT, FAKE_CHAT, PROMPT, chat_graph, cpu_seconds, fake_model_config, rss_mb, stack_pids

ROOT = Path(__file__).resolve().parents[1]

# mode -> (task weights, default users). A task's weight is how often a user picks it.
MODES: dict[str, tuple[dict[str, int], int]] = {
    "mixed": ({"chat": 4, "workflow": 3, "retrieval": 3, "upload": 1}, 8),
    "streams": ({"chat": 1}, 200),  # concurrent streaming chats held (faults-and-scale issue)
}
MAX_TOKENS = 8  # a chat answer's length: the load is on the platform, a 2-core box decodes ~70 tok/s
WORKFLOW_GRAPH = {"nodes": [
    {"id": "start", "data": {"type": "start", "variables": [{"variable": "city", "type": "text-input"}]}},
    {"id": "t", "data": {"type": "template-transform", "template": "Hello {{ city }}!",
                         "variables": [{"variable": "city", "value_selector": ["start", "city"]}]}},
    {"id": "end", "data": {"type": "end", "outputs": [{"variable": "greeting", "value_selector": ["t", "output"]}]}}],
    "edges": [{"source": "start", "target": "t"}, {"source": "t", "target": "end"}]}
SEED_DOC = ("Hekla erupted in 2000. Katla sleeps under the Myrdalsjokull glacier. "
            "Eyjafjallajokull closed European airspace in 2010. Grimsvotn lies under Vatnajokull.")
QUERIES = ["Which volcano sleeps under a glacier?", "When did Hekla erupt?", "What closed airspace in 2010?"]


@dataclass
class Target:
    """What the load runs against: the gateway and the keys the setup made."""

    url: str
    chat_key: str = ""
    workflow_key: str = ""
    dataset_key: str = ""
    dataset_id: str = ""
    ca_file: str | None = None
    weights: dict[str, int] = field(default_factory=dict)
    users: int = 8
    duration_s: float = 60.0
    chat_model: str = BUNDLED_CHAT
    chat_tokens: int = MAX_TOKENS


# ---- set-up (parent process) -------------------------------------------------------------------

def _console_login(http, url: str, email: str, password: str) -> tuple[dict, str]:
    r = http.post(f"{url}/console/api/login", json={"email": email, "password": password})
    r.raise_for_status()
    headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
    workspace = http.get(f"{url}/console/api/workspaces", headers=headers).json()["data"][0]["id"]
    return headers, f"{url}/console/api/workspaces/{workspace}"


def _app_key(http, ws: str, headers: dict, mode: str, graph: dict, name: str) -> str:
    app_id = http.post(f"{ws}/apps", json={"name": name, "mode": mode}, headers=headers).json()["id"]
    draft = http.get(f"{ws}/apps/{app_id}/draft", headers=headers).json()["dsl"]
    draft["workflow"]["graph"] = graph
    http.put(f"{ws}/apps/{app_id}/draft", json={"dsl": draft}, headers=headers).raise_for_status()
    http.post(f"{ws}/apps/{app_id}/publish", headers=headers).raise_for_status()
    return http.post(f"{ws}/apps/{app_id}/api-keys", json={"name": "load"}, headers=headers).json()["token"]


def prepare(target: Target, email: str, password: str) -> Target:
    """Two apps with keys, a dataset with one indexed document: what every task needs."""
    import httpx

    from loom_common.tls import client_context

    verify = client_context(Path(target.ca_file)) if target.ca_file else True
    tag = uuid.uuid4().hex[:6]
    with httpx.Client(verify=verify, timeout=60) as http:
        headers, ws = _console_login(http, target.url, email, password)
        target.chat_key = _app_key(http, ws, headers, "chatflow", chat_graph(target.chat_model, target.chat_tokens),
                                   f"load-chat-{tag}")
        if not ({"retrieval", "upload", "workflow"} & set(target.weights)):
            return target  # chats alone: no dataset (nor the embedding model's load) needed
        target.workflow_key = _app_key(http, ws, headers, "workflow", WORKFLOW_GRAPH, f"load-workflow-{tag}")
        target.dataset_key = http.post(f"{ws}/dataset-api-keys", headers=headers).json()["token"]
        h = {"Authorization": f"Bearer {target.dataset_key}"}
        ds = http.post(f"{target.url}/v1/datasets", json={"name": f"load-{tag}"}, headers=h)
        ds.raise_for_status()
        target.dataset_id = ds.json()["id"]
        created = http.post(f"{target.url}/v1/datasets/{target.dataset_id}/document/create-by-text", headers=h,
                            json={"name": "volcanoes", "text": SEED_DOC, "indexing_technique": "high_quality",
                                  "process_rule": {"mode": "automatic"}}).json()
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:  # retrievals need an indexed document
            status = http.get(f"{target.url}/v1/datasets/{target.dataset_id}/documents/{created['batch']}"
                              "/indexing-status", headers=h).json()["data"][0]["indexing_status"]
            if status in ("completed", "error"):
                break
            time.sleep(0.5)
        if status != "completed":
            sys.exit(f"bench/load.py: the seed document was not indexed ({status})")
    return target


def warm_up(target: Target) -> None:
    """One chat before the clock starts: the chat model loads on its first request."""
    import httpx

    from loom_common.tls import client_context

    verify = client_context(Path(target.ca_file)) if target.ca_file else True
    with httpx.Client(verify=verify, timeout=300) as http:
        r = http.post(f"{target.url}/v1/chat-messages", headers={"Authorization": f"Bearer {target.chat_key}"},
                      json={"inputs": {}, "query": PROMPT, "user": "warm-up", "response_mode": "blocking"})
        r.raise_for_status()


# ---- the load (child process: Locust and gevent live here only) --------------------------------

def locust_child(target: Target) -> dict:
    import gevent
    from locust import HttpUser, constant
    from locust.env import Environment
    from locust.log import setup_logging

    setup_logging("WARNING")
    streams = {"open": 0, "held": 0}  # streams past their first token and not yet ended; the most at once

    class LoomUser(HttpUser):
        host = target.url
        wait_time = constant(0)  # closed loop: each user sends its next request when one ends

        def on_start(self) -> None:
            self.client.verify = target.ca_file or True
            self.n = 0

        def _fire(self, name: str, started: float, error: Exception | None, length: int = 0) -> None:
            self.environment.events.request.fire(request_type="SSE", name=name, context={}, exception=error,
                                                 response_time=(time.perf_counter() - started) * 1000,
                                                 response_length=length)

        def chat(self) -> None:
            self.n += 1
            started, first, error, events, ended = time.perf_counter(), None, None, 0, False
            r = None
            try:  # Locust times the response head ("chat (headers)"); the stream is timed here
                r = self.client.post("/v1/chat-messages", name="chat (headers)", stream=True, timeout=300,
                                     headers={"Authorization": f"Bearer {target.chat_key}"},
                                     json={"inputs": {}, "query": PROMPT,
                                           "user": f"load-{id(self)}", "response_mode": "streaming"})
                r.raise_for_status()
                for line in r.iter_lines(decode_unicode=True):
                    if not line or not line.startswith("data: "):
                        continue
                    events += 1
                    event = json.loads(line[6:])
                    if event.get("event") == "message" and first is None:
                        first = time.perf_counter()
                        self._fire("chat ttft", started, None)
                        streams["open"] += 1
                        streams["held"] = max(streams["held"], streams["open"])
                    elif event.get("event") == "message_end":
                        ended = True
                    elif event.get("event") == "error":
                        error = RuntimeError(event.get("message", "error event"))
                if first is None and error is None:
                    error = RuntimeError("the stream ended without a message event")
                elif not ended and error is None:
                    error = RuntimeError("the stream ended without message_end")
            except Exception as exc:  # every failure counts, whatever it is
                error = exc
            finally:
                if first is not None:
                    streams["open"] -= 1
                if r is not None:
                    r.close()
            self._fire("chat stream", started, error, events)

        def workflow(self) -> None:
            self.n += 1
            with self.client.post("/v1/workflows/run", name="workflow", catch_response=True, timeout=300,
                                  headers={"Authorization": f"Bearer {target.workflow_key}"},
                                  json={"inputs": {"city": f"c{self.n}"}, "user": "load",
                                        "response_mode": "blocking"}) as r:
                if r.status_code != 200 or r.json().get("data", {}).get("status") != "succeeded":
                    r.failure(f"{r.status_code}: {r.text[:200]}")

        def retrieval(self) -> None:
            self.n += 1
            with self.client.post(f"/v1/datasets/{target.dataset_id}/retrieve", name="retrieval",
                                  catch_response=True, timeout=120,
                                  headers={"Authorization": f"Bearer {target.dataset_key}"},
                                  json={"query": QUERIES[self.n % len(QUERIES)],
                                        "retrieval_model": {"search_method": "hybrid_search", "top_k": 3}}) as r:
                if r.status_code != 200 or not r.json().get("records"):
                    r.failure(f"{r.status_code}: {r.text[:200]}")

        def upload(self) -> None:
            self.n += 1
            body = f"# Note {uuid.uuid4().hex[:8]}\n\nA short note uploaded by the load test, number {self.n}.\n"
            with self.client.post(f"/v1/datasets/{target.dataset_id}/document/create-by-file", name="upload",
                                  catch_response=True, timeout=120,
                                  headers={"Authorization": f"Bearer {target.dataset_key}"},
                                  data={"data": json.dumps({"indexing_technique": "high_quality",
                                                            "process_rule": {"mode": "automatic"}})},
                                  files={"file": (f"note-{self.n}.md", body.encode(), "text/markdown")}) as r:
                if r.status_code != 200 or "document" not in r.json():
                    r.failure(f"{r.status_code}: {r.text[:200]}")

    LoomUser.tasks = [getattr(LoomUser, name) for name, weight in target.weights.items() for _ in range(weight)]
    env = Environment(user_classes=[LoomUser])
    runner = env.create_local_runner()
    runner.start(target.users, spawn_rate=target.users)
    started = time.monotonic()
    gevent.spawn_later(target.duration_s, runner.quit)
    runner.greenlet.join()
    elapsed = time.monotonic() - started
    out = {}
    for (name, _method), e in env.stats.entries.items():
        out[name] = {"requests": e.num_requests, "failures": e.num_failures,
                     "error_rate": round(e.num_failures / e.num_requests, 4) if e.num_requests else 0.0,
                     "rps": round(e.num_requests / elapsed, 2),
                     **{f"p{p}_ms": round(e.get_response_time_percentile(p / 100), 1) for p in (50, 95, 99)},
                     "max_ms": round(e.max_response_time or 0, 1)}
    errors = {f"{e.name}: {e.error}"[:300]: e.occurrences for e in env.stats.errors.values()}
    return {"kinds": out, "errors": errors, "elapsed_s": round(elapsed, 1), "streams_held": streams["held"]}


# ---- the parent: a stack, the set-up, the child, the report ------------------------------------

class Sampler:
    """Each process's resident memory (peak) and CPU time over the load, sampled once a second."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.peak: dict[str, float] = dict.fromkeys(pids, 0.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            for name, mb in rss_mb(self.pids).items():
                self.peak[name] = max(self.peak[name], mb)

    def __enter__(self) -> Sampler:
        self.cpu0, self.t0 = cpu_seconds(self.pids), time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        elapsed = time.monotonic() - self.t0
        used = {k: v - self.cpu0[k] for k, v in cpu_seconds(self.pids).items()}
        self.result = {name: {"rss_mb_peak": self.peak[name], "cpu_s": round(used[name], 1),
                              "cpu_pct": round(100 * used[name] / elapsed, 1)} for name in self.pids}


def run_load(target: Target, pids: dict[str, int] | None = None) -> dict:
    with Sampler(pids or {}) as sampler:
        r = subprocess.run([sys.executable, __file__, "--locust-child"], input=json.dumps(asdict(target)),
                           capture_output=True, text=True, timeout=target.duration_s + 600)
    if r.returncode != 0:
        sys.exit(f"the load's process failed ({r.returncode}):\n{r.stderr[-3000:]}")
    return {**json.loads(r.stdout.strip().splitlines()[-1]), "processes": sampler.result}


def stack_env(root: Path, users: int, chat_model: str, token_gap_s: float) -> dict[str, dict[str, str]]:
    """Settings sized for `users` concurrent chats: orchestrator slots for each, the engine's
    batch and queue (the fake route's, or the bundled model's queue), Postgres pools."""
    env = {"gateway": {"LOOM_GATEWAY_KEY_RPM": "0", "LOOM_GATEWAY_WORKSPACE_RPM": "0"},
           "inference": {}, "service": {"LOOM_ORCHESTRATOR_MAX_CONCURRENT_RUNS": str(max(8, users))}}
    if chat_model == FAKE_CHAT:
        (root / "home").mkdir(parents=True, exist_ok=True)
        env["inference"] = fake_model_config(root / "home" / "inference-fake.toml", streams=max(8, users),
                                             step_delay_s=token_gap_s)
    else:  # the bundled model decodes every user's sequence at once: ~256 KV cells each (~18 KB a cell)
        env["inference"] = {"LOOM_INFERENCE_PERFORMANCE__MAX_PARALLEL": str(max(8, users)),
                            "LOOM_INFERENCE_PERFORMANCE__MAX_WAITING": str(max(64, users)),
                            "LOOM_INFERENCE_PERFORMANCE__N_CTX": str(max(8192, 256 * users))}
    return env


def own_stack(root: Path, env: dict[str, dict[str, str]] | None = None):
    """NATS, Postgres and every service on free ports (bench/gateway.py's way)."""
    sys.path.insert(0, str(ROOT / "services" / "gateway" / "tests"))
    from gateway_stack import PASSWORD, start_stack

    from loom_common.devstack import infra

    env = env or {"gateway": {"LOOM_GATEWAY_KEY_RPM": "0", "LOOM_GATEWAY_WORKSPACE_RPM": "0"}}
    nats = infra.EmbeddedNats(root / "nats").start()
    pg = infra.EmbeddedPostgres(root / "pg").start()
    try:
        stack = start_stack(nats.url, pg.url("loom_load"), root / "home", gateway_env=env.get("gateway"),
                            inference_env=env.get("inference"), service_env=env.get("service"))
    except BaseException:
        pg.stop()
        nats.stop()
        raise
    pids = stack_pids(stack, {"nats": nats.proc.pid, "postgres": pg.proc.pid})
    return stack, (stack, pg, nats), "admin@example.com", PASSWORD, pids


def report(result: dict, target: Target, mode: str) -> None:
    kinds = result["kinds"]
    print(f"mode {mode}: {target.users} users for {result['elapsed_s']:.0f} s against {target.url} "
          f"(weights {target.weights})")
    print(f"{'kind':<16}{'requests':>9}{'req/s':>8}{'errors':>8}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}")
    for name, k in sorted(kinds.items()):
        print(f"{name:<16}{k['requests']:>9}{k['rps']:>8.2f}{k['error_rate']:>8.1%}{k['p50_ms']:>9.0f}"
              f"{k['p95_ms']:>9.0f}{k['p99_ms']:>9.0f}")
    for error, n in result["errors"].items():
        print(f"  {n} x {error}")
    # Totals over the requests users made (ttft is a mark inside a chat stream, the headers
    # entry the same request again: neither is counted twice).
    counted = {n: k for n, k in kinds.items() if n not in ("chat ttft", "chat (headers)")}
    requests = sum(k["requests"] for k in counted.values())
    failures = sum(k["failures"] for k in counted.values())
    ttft = kinds.get("chat ttft", {})
    print(f"streams held at once: {result['streams_held']} of {target.users} users; chat TTFT p50 "
          f"{ttft.get('p50_ms', 0):.0f} ms, p95 {ttft.get('p95_ms', 0):.0f} ms (model {target.chat_model})")
    for name, p in result.get("processes", {}).items():
        print(f"  {name:<13} RSS peak {p['rss_mb_peak']:>7.0f} MiB   CPU {p['cpu_s']:>6.1f} s ({p['cpu_pct']:.0f} %)")
    print(json.dumps({"mode": mode, "users": target.users, "chat_model": target.chat_model,
                      "duration_s": result["elapsed_s"],
                      "total_rps": round(requests / result["elapsed_s"], 2), "total_requests": requests,
                      "error_rate": round(failures / requests, 4) if requests else None,
                      "streams_held": result["streams_held"],
                      "ttft_p50_ms": ttft.get("p50_ms"), "ttft_p95_ms": ttft.get("p95_ms"),
                      "processes": result.get("processes", {}), "kinds": kinds}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--locust-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true", help="45 s, 4 users (with its own stack: ~2 minutes)")
    ap.add_argument("--mode", choices=sorted(MODES), default="mixed")
    ap.add_argument("--duration", type=float, default=120.0, help="seconds of load")
    ap.add_argument("--users", type=int, help="concurrent users (default: the mode's)")
    ap.add_argument("--url", help="a running gateway (default: start a stack of its own)")
    ap.add_argument("--ca-file", help="the CA of a TLS gateway (LOOM_TLS=1 make up: .loom/tls/ca.pem)")
    ap.add_argument("--email", default="admin@example.com", help="a console user of --url's workspace")
    ap.add_argument("--password", help="that user's password (with --url)")
    ap.add_argument("--model", choices=("fake", "bundled"),
                    help="the chat model (default: fake in the streams mode, else the bundled gemma3:270m)")
    ap.add_argument("--stream-tokens", type=int,
                    help="streams mode: tokens per answer (default 64 with the fake model, 16 with the bundled)")
    ap.add_argument("--token-gap", type=float, default=0.1, help="streams mode, fake model: seconds between tokens")
    args = ap.parse_args()
    if args.locust_child:
        print(json.dumps(locust_child(Target(**json.loads(sys.stdin.read())))))
        return
    weights, default_users = MODES[args.mode]
    streams = args.mode == "streams"
    fake = (args.model or ("fake" if streams else "bundled")) == "fake"
    if fake and args.url:
        sys.exit("--model fake needs the bench's own stack (the fake route is configured at its start)")
    target = Target(url=args.url or "", ca_file=args.ca_file, weights=weights,
                    users=args.users or (default_users if streams else 4 if args.quick else default_users),
                    duration_s=45.0 if args.quick else args.duration,
                    chat_model=FAKE_CHAT if fake else BUNDLED_CHAT,
                    chat_tokens=(args.stream_tokens or (64 if fake else 16)) if streams else MAX_TOKENS)
    if args.url and not args.password:
        sys.exit("--url needs --password (and --email): the load test creates its apps and dataset")
    root = Path(tempfile.mkdtemp(prefix="loom-bench-load-"))
    owned = None
    ok = False
    pids: dict[str, int] = {}
    try:
        email, password = args.email, args.password
        if not args.url:
            env = stack_env(root, target.users, target.chat_model, args.token_gap) if streams else None
            stack, owned, email, password, pids = own_stack(root, env)
            target.url = stack.gateway_url
        t0 = time.perf_counter()
        prepare(target, email, password)
        if "chat" in target.weights:
            warm_up(target)
        print(f"set-up (apps, dataset, one indexed document, a warm-up chat) {time.perf_counter() - t0:.0f} s",
              file=sys.stderr)
        result = run_load(target, pids)
        ok = True
    finally:
        if owned is not None:
            stack, pg, nats = owned
            stack.stop()
            pg.stop()
            nats.stop()
        if ok:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"logs kept in {root / 'home'}", file=sys.stderr)
    report(result, target, args.mode)


if __name__ == "__main__":
    main()
