"""Pausing a run on a human-input form: the port the node asks through, and the exception that
stops the run's graph without failing it.

A human-input node asks `HumanInputs.ask` for its form: the first ask records the form as
pending (with its deadline, computed where it is stored, so a restart keeps it); later asks,
after the run was taken up again, find it answered or timed out. A pending form raises
`RunPaused`: the engine lets the other branches finish (their results are journaled), starts
nothing downstream of the form, and the worker records the run as paused and lets go of it.
An answer (or the form's timer) comes back as a run request carrying `resume`, and the run is
executed again from its journal: finished nodes replay, the human-input node finds its answer.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class FormState:
    form_id: str
    status: str  # pending | answered | timed_out
    values: dict[str, Any] = field(default_factory=dict)
    action: str = "source"
    deadline: float | None = None  # epoch seconds; None: waits for ever
    answered_by: str = ""


@dataclass(frozen=True)
class PendingForm:
    form_id: str
    node_key: str


class RunPaused(Exception):
    """The run waits for one or more human-input forms."""

    def __init__(self, forms: list[PendingForm]):
        super().__init__(f"waiting for {len(forms)} human-input form(s)")
        self.forms = forms


class HumanInputs(Protocol):
    async def ask(self, run_id: str, tenant_id: str, form_id: str, node_key: str, node_id: str,
                  form: dict[str, Any], wait_s: int) -> FormState:
        """The form's state, recording it as pending (deadline: now + wait_s; 0: none) if new."""
        ...


class MemoryHumanInputs:
    """`HumanInputs` in memory (unit tests): `answer` and `expire` play the gateway and the timer."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now
        self.forms: dict[str, FormState] = {}
        self.asked: list[str] = []

    async def ask(self, run_id, tenant_id, form_id, node_key, node_id, form, wait_s) -> FormState:
        self.asked.append(form_id)
        state = self.forms.setdefault(form_id, FormState(form_id, "pending",
                                                         deadline=self.now + wait_s if wait_s else None))
        return copy.deepcopy(state)

    def answer(self, form_id: str, values: dict[str, Any], action: str = "source") -> None:
        self.forms[form_id] = FormState(form_id, "answered", values, action)

    def expire(self, form_id: str) -> None:
        self.forms[form_id] = FormState(form_id, "timed_out", action="timeout")
