"""Invoke: find the tool, validate its arguments, run it under a deadline, audit the call.

Every failure becomes an `Outcome` with a typed `error_code`; nothing a tool does can raise
past this function, so one bad call never takes the service down. Credentials are scrubbed
from results and messages (an API may echo a header back), and logs never carry arguments.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from typing import Any

from loom_common.logging import get_logger
from loom_tools.domain.audit import AuditSink
from loom_tools.domain.types import Call, Outcome, Runner, ToolSpec
from loom_tools.domain.validation import validate_arguments
from loom_tools.errors import NotFound, ToolError, ToolTimeout
from loom_tools.store.registry import Registry

log = get_logger(__name__)

REDACTED = "***"


def scrub(value: Any, secrets: list[str]) -> Any:
    if not secrets:
        return value
    if isinstance(value, str):
        for s in secrets:
            value = value.replace(s, REDACTED)
        return value
    if isinstance(value, dict):
        return {scrub(k, secrets): scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v, secrets) for v in value]
    return value


class Executor:
    def __init__(self, registry: Registry | None, builtins: dict[str, ToolSpec],
                 runners: dict[str, Runner], audit: AuditSink | None, *,
                 default_timeout_s: float = 30.0, max_timeout_s: float = 120.0) -> None:
        self._registry = registry
        self._builtins = builtins
        self._runners = runners
        self._audit = audit
        self._default_timeout_s = default_timeout_s
        self._max_timeout_s = max_timeout_s

    @property
    def builtin_names(self) -> frozenset[str]:
        return frozenset(self._builtins)

    async def list(self, tenant_id: str, kind: str = "") -> list[ToolSpec]:
        own = await self._registry.list(tenant_id) if self._registry else []
        return [s for s in (*self._builtins.values(), *own)
                if not kind or s.kind == kind or (kind == "builtin" and s.config.get("builtin"))]

    async def _spec(self, call: Call) -> ToolSpec:
        if call.tool in self._builtins:
            return self._builtins[call.tool]
        if self._registry is None:
            raise NotFound(f"no tool {call.tool!r}", field="tool")
        return await self._registry.get(call.tenant_id, call.tool)

    async def invoke(self, call: Call) -> Outcome:
        started = time.perf_counter()
        secrets: list[str] = []
        try:
            spec = await self._spec(call)
            secrets = spec.secret_values()
            validate_arguments(spec.parameters, call.arguments)
            timeout = min(call.timeout_s or spec.config.get("timeout_s", self._default_timeout_s),
                          self._max_timeout_s)
            runner = self._runners[spec.kind]
            try:
                # The runners enforce their own (tighter) limits; this is the backstop.
                # A runner that needs the tenant or run (tickets.create writes a row) takes the call.
                running = (runner.run_call(call, spec, timeout) if hasattr(runner, "run_call")
                           else runner.run(spec, call.arguments, timeout))
                result = await asyncio.wait_for(running, timeout + 1.0)
            except TimeoutError as exc:
                raise ToolTimeout(f"tool {call.tool!r} ran past {timeout:g}s") from exc
            json.dumps(result)  # a result that cannot cross the wire is the tool's bug
            outcome = Outcome(True, scrub(result, secrets))
        except ToolError as exc:
            outcome = Outcome(False, error_code=exc.code, error_message=scrub(exc.message, secrets),
                              error_field=exc.field or "")
        except Exception as exc:
            log.exception("tool crashed", tool=call.tool, tenant_id=call.tenant_id)
            outcome = Outcome(False, error_code="internal",
                              error_message=scrub(f"{type(exc).__name__}: {exc}", secrets))
        outcome = dataclasses.replace(outcome, duration_ms=(time.perf_counter() - started) * 1000)
        log.info("tool invoked", tool=call.tool, tenant_id=call.tenant_id, run_id=call.run_id,
                 node_id=call.node_id, ok=outcome.ok, error_code=outcome.error_code,
                 duration_ms=round(outcome.duration_ms, 2))
        if self._audit is not None:
            await self._audit.record(call, outcome)
        return outcome
