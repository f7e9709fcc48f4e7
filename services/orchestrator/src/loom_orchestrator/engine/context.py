"""What a node sees while it runs, and what it returns.

`RunContext` is the deterministic world of a run (Temporal's `workflow.now()/uuid4()`
idea): ids come from the run id and the node's key, never from a random source, so a
resumed run names its node executions the same way. Wall-clock time is read only for
event timestamps and limits, never for a branching decision.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from loom_orchestrator.engine.pause import HumanInputs
from loom_orchestrator.engine.ports import DocumentReader, ModelClient, Retriever, ToolRunner
from loom_orchestrator.engine.variables import VariablePool

_NS = uuid.UUID("6f1d3c52-8a0b-4c57-9d0e-3b5c9a1f7e21")


@dataclass(frozen=True)
class RunLimits:
    max_steps: int = 1000  # node executions in all, inner ones included
    max_wall_s: float = 600.0  # since the run was first accepted, across redeliveries
    default_timeout_s: float = 120.0  # per node attempt when the node sets none
    model_timeout_s: float = 300.0  # per attempt for model-backed nodes
    max_parallel: int = 8  # nodes of one run executing at once
    max_node_restarts: int = 1  # a node in flight when its worker died is started again at most this often


@dataclass(frozen=True)
class RunContext:
    run_id: str
    tenant_id: str
    app_id: str
    mode: str = "workflow"  # workflow | chatflow | agent | chat | completion
    conversation_id: str | None = None
    message_id: str | None = None
    user: str | None = None
    accepted_at: float = 0.0  # epoch seconds when the run was first recorded
    paused_s: float = 0.0  # time spent paused on human-input forms (not counted in the wall time)
    limits: RunLimits = field(default_factory=RunLimits)
    clock: Callable[[], float] = time.time

    def execution_id(self, key: str) -> str:
        return str(uuid.uuid5(_NS, f"{self.run_id}/{key}"))

    @property
    def chat(self) -> bool:
        return self.mode in ("chatflow", "chat", "agent")


@dataclass(frozen=True)
class Turn:
    """One earlier exchange of the conversation (memory)."""

    query: str
    answer: str


@dataclass
class Services:
    model: ModelClient | None = None
    retriever: Retriever | None = None
    tools: ToolRunner | None = None
    documents: DocumentReader | None = None
    human_inputs: HumanInputs | None = None  # human-input forms (pause.py)
    history: list[Turn] = field(default_factory=list)


@dataclass
class NodeResult:
    """What a node returns: its variables, and what it does to the run. The engine applies the
    latter the same way whatever the node's type, now and when a resumed run replays the node
    from the journal (which keeps every field)."""

    outputs: dict[str, Any] = field(default_factory=dict)  # the node's variables, `[node_id, name]`
    inputs: dict[str, Any] = field(default_factory=dict)
    process_data: dict[str, Any] = field(default_factory=dict)
    edge_handle: str = "source"  # branch control: the outgoing edges with this source handle are taken
    writes: list[list[Any]] = field(default_factory=list)  # [[selector, value]]: the engine applies them
    answer: str | None = None  # text added to the run's answer (what was said to the client)
    citations: list[dict[str, Any]] = field(default_factory=list)  # retrieved chunks the answer may cite
    run_outputs: dict[str, Any] | None = None  # the workflow's outputs (taken from the top-level scope only)
    loop_end: bool = False  # loop control: the enclosing loop stops after this round
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass
class ScopeOutcome:
    """What running a container's children returned (for iteration and loop nodes)."""

    pool: VariablePool
    loop_end: bool = False  # a loop-end node ran
    tokens: int = 0


@dataclass
class NodeContext:
    node_id: str
    key: str
    pool: VariablePool
    run: RunContext
    services: Services
    emit: Callable[[str, dict[str, Any]], None]  # (event, data) for this node
    stream: Callable[[str], None]  # a piece of generated text (answer streaming)
    run_scope: Callable[[str, VariablePool, str], Awaitable[ScopeOutcome]]  # (container, pool, key prefix)
    say: Callable[[str], None] = print  # answer text to the client (message / text_chunk)
    streamed: Callable[[str], bool] = lambda node_id: False  # did that node stream its text live?
    timeout_s: float = 60.0
    attempt: int = 1
