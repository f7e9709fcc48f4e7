"""A suite: which measurements run, on which cases, with which limits, judged by which
thresholds. Suites, cases and thresholds are data files (YAML or JSON); the shipped ones live
in `data/` and are named by their stem (`full`, `small`). Relative paths in a suite file
(the tool-call cases, the retention facts) resolve against the suite file's folder.

Every file is checked on load (pydantic, then the cross-references: a case's tools exist, its
expected call names one of them, its expected argument names are in that function's schema),
so a typo in a case is an error naming the case, not a silently failed measurement.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from loom_common import untrusted_yaml

MAX_FILE_BYTES = 4 << 20  # a suite or case file is small; refuse anything larger before parsing


class SuiteError(ValueError):
    """A suite or case file that cannot be used, with the reason and where."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TtftSpec(_Strict):
    prompts: list[str] = Field(min_length=1)
    requests: int = Field(20, ge=1, le=10_000)       # sequential streams at concurrency 1
    concurrency: int = Field(4, ge=1, le=256)        # N
    rounds: int = Field(5, ge=1, le=1_000)           # bursts of N streams at once
    max_tokens: int = Field(8, ge=1, le=4096)        # the answer is cut short: only its start matters


class RetentionSpec(_Strict):
    turns: list[int] = Field(min_length=1)           # k: the turn at which the fact is asked
    facts: int | None = Field(None, ge=1)            # how many of the facts file's facts (None: all)
    reply_max_tokens: int = Field(32, ge=1, le=4096)
    concurrency: int = Field(4, ge=1, le=64)         # conversations run side by side
    facts_file: str = "retention.yaml"

    @model_validator(mode="after")
    def _turns(self) -> RetentionSpec:
        if any(k < 1 or k > 64 for k in self.turns):
            raise ValueError("turns must lie in 1..64")
        self.turns = sorted(set(self.turns))
        return self


class ToolCallSpec(_Strict):
    cases_file: str = "tool_calls.yaml"
    limit: int | None = Field(None, ge=1)            # N cases only, round-robin across categories
    tool_choice: Literal["auto", "required"] = "required"
    max_tokens: int = Field(256, ge=16, le=8192)
    concurrency: int = Field(4, ge=1, le=64)


class Thresholds(_Strict):
    """What counts as good. Missing = not judged."""
    ttft_p50_ms: float | None = None
    ttft_p95_ms: float | None = None
    ttft_p99_ms: float | None = None
    retention_share_at_max_k: float | None = Field(None, ge=0, le=1)
    tool_parse_rate: float | None = Field(None, ge=0, le=1)
    tool_schema_valid_rate: float | None = Field(None, ge=0, le=1)
    tool_exact_match_rate: float | None = Field(None, ge=0, le=1)


class Suite(_Strict):
    name: str
    description: str = ""
    ttft: TtftSpec | None = None
    retention: RetentionSpec | None = None
    tool_calls: ToolCallSpec | None = None
    thresholds: Thresholds = Thresholds()
    base_dir: Path | None = Field(None, exclude=True)  # set on load: where relative files resolve


# --- cases ---------------------------------------------------------------------------------

class Fact(_Strict):
    id: str
    statement: str          # said at turn 1
    question: str           # asked at turn k
    answers: list[str] = Field(min_length=1)  # any of these in the reply counts as recalled

    @model_validator(mode="after")
    def _no_leak(self) -> Fact:
        # The question must not hand the answer over, or recall would be free.
        if any(a.casefold() in self.question.casefold() for a in self.answers):
            raise ValueError(f"fact {self.id}: the question contains its answer")
        return self


class RetentionData(_Strict):
    facts: list[Fact] = Field(min_length=1)
    distractors: list[str] = Field(min_length=1)


class FunctionDef(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    description: str = ""
    parameters: dict[str, Any]


class ExpectedCall(_Strict):
    name: str
    # Per argument, the accepted values (BFCL's "possible answers"); `null` among them means the
    # argument may be left out. An argument not listed must not be given. For an object-typed
    # argument each accepted value is itself such a mapping (checked recursively); for an
    # array-typed one each accepted value is the whole list.
    arguments: dict[str, list[Any]] = Field(default_factory=dict)


class ToolCase(_Strict):
    id: str
    category: str
    tools: list[str] = Field(min_length=1)   # names of the functions offered
    request: str
    expected: ExpectedCall


class ToolCaseSet(_Strict):
    functions: list[FunctionDef] = Field(min_length=1)
    cases: list[ToolCase] = Field(min_length=1)
    _by_name: dict[str, FunctionDef] = PrivateAttr(default_factory=dict)

    def function(self, name: str) -> FunctionDef:
        return self._by_name[name]

    @model_validator(mode="after")
    def _references(self) -> ToolCaseSet:
        self._by_name = {f.name: f for f in self.functions}
        if len(self._by_name) != len(self.functions):
            raise ValueError("two functions share a name")
        for f in self.functions:
            try:
                Draft202012Validator.check_schema(f.parameters)
            except SchemaError as exc:
                raise ValueError(f"function {f.name}: its parameters are not a JSON schema: {exc.message}") from exc
        seen: set[str] = set()
        for case in self.cases:
            if case.id in seen:
                raise ValueError(f"case id {case.id} is used twice")
            seen.add(case.id)
            unknown = [t for t in case.tools if t not in self._by_name]
            if unknown:
                raise ValueError(f"case {case.id}: unknown tools {unknown}")
            if case.expected.name not in case.tools:
                raise ValueError(f"case {case.id}: the expected function is not among its tools")
            props = self._by_name[case.expected.name].parameters.get("properties", {})
            extra = [a for a in case.expected.arguments if a not in props]
            if extra:
                raise ValueError(f"case {case.id}: expected arguments {extra} are not in the schema")
            if any(not alts for alts in case.expected.arguments.values()):
                raise ValueError(f"case {case.id}: an expected argument has no accepted value")
        return self


# --- loading -------------------------------------------------------------------------------

def _read(path: Path) -> Any:
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise SuiteError(f"{path}: larger than {MAX_FILE_BYTES} bytes")
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SuiteError(f"{path}: {exc.strerror or exc}") from exc
    try:
        # Suites and cases may come from anyone: YAML without anchors/aliases (no alias bombs).
        return json.loads(text) if path.suffix == ".json" else untrusted_yaml.load(text, max_chars=MAX_FILE_BYTES)
    except json.JSONDecodeError as exc:
        raise SuiteError(f"{path}: not valid JSON: {exc}") from exc
    except untrusted_yaml.UntrustedYamlError as exc:
        raise SuiteError(f"{path}: {exc.message}") from exc


def _parse(model: type[BaseModel], data: Any, path: Path):
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise SuiteError(f"{path}: {where}: {first['msg']}") from exc


def data_dir() -> Path:
    return Path(str(resources.files("loom_gateway.eval") / "data"))


def shipped_suites() -> list[str]:
    return sorted(p.stem for p in (data_dir() / "suites").glob("*.yaml"))


def load_suite(name_or_path: str) -> Suite:
    """A shipped suite by name (`full`, `small`) or a suite file by path."""
    path = Path(name_or_path)
    if not path.exists():
        shipped = data_dir() / "suites" / f"{name_or_path}.yaml"
        if not shipped.exists():
            raise SuiteError(f"no suite file {name_or_path!r} and no shipped suite of that name "
                             f"(shipped: {', '.join(shipped_suites())})")
        path = shipped
    suite = _parse(Suite, _read(path), path)
    suite.base_dir = path.parent
    return suite


def resolve(suite: Suite, name: str) -> Path:
    """A data file named by a suite: relative to the suite's folder, else to the shipped data."""
    path = Path(name)
    if path.is_absolute():
        return path
    for base in (suite.base_dir, data_dir()):
        if base is not None and (base / path).exists():
            return base / path
    return (suite.base_dir or data_dir()) / path


def load_tool_cases(path: Path) -> ToolCaseSet:
    return _parse(ToolCaseSet, _read(path), path)


def load_retention(path: Path) -> RetentionData:
    return _parse(RetentionData, _read(path), path)


def check_files(suite: Suite) -> None:
    """Load every file the suite names, so a bad one fails before anything is measured."""
    if suite.retention is not None:
        load_retention(resolve(suite, suite.retention.facts_file))
    if suite.tool_calls is not None:
        load_tool_cases(resolve(suite, suite.tool_calls.cases_file))


def load_thresholds(path: Path) -> Thresholds:
    return _parse(Thresholds, _read(path), path)
