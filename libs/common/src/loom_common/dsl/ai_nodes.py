"""Node data of the model-backed node types: llm, knowledge-retrieval, question-classifier,
parameter-extractor and agent.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, JsonValue, field_validator

from loom_common.dsl.base import Model, NodeData, ValueSelector
from loom_common.dsl.metadata_filters import MetadataFilteringConditions


class ModelConfig(Model):
    provider: str = ""
    name: str = Field(min_length=1)
    mode: Literal["chat", "completion"] = "chat"
    # temperature, top_p, top_k, max_tokens, stop, seed, repeat_penalty
    completion_params: dict[str, JsonValue] = Field(default_factory=dict)


class PromptMessage(Model):
    role: Literal["system", "user", "assistant"] = "user"
    text: str = ""


class MemoryWindow(Model):
    enabled: bool = True
    size: int = Field(default=50, ge=1, le=500, description="most recent turns kept")


class Memory(Model):
    """Conversation memory of a chatflow: the last `window.size` turns that fit `max_tokens`."""

    window: MemoryWindow = Field(default_factory=MemoryWindow)
    max_tokens: int = Field(default=2000, ge=0, description="token budget of the history (estimated)")
    query_prompt_template: str = "{{#sys.query#}}"


class ContextConfig(Model):
    enabled: bool = False
    variable_selector: ValueSelector | None = None


class VisionConfigs(Model):
    variable_selector: ValueSelector = Field(default_factory=lambda: ["sys", "files"])
    # Dify's image resolution hint (high | low); kept for parity, Loom's models take the image as is.
    detail: Literal["high", "low"] = "high"

    @field_validator("variable_selector", mode="before")
    @classmethod
    def _default_files(cls, v):
        return v or ["sys", "files"]  # Dify exports may carry an empty selector: sys.files, as Dify


class Vision(Model):
    """Dify's `vision`: the node reads the files at `configs.variable_selector` (`sys.files` or a
    file variable). Text-like files are inlined in the prompt; images go to a vision-capable model
    (any other refuses them: the node fails naming the file and the model)."""

    enabled: bool = False
    configs: VisionConfigs = Field(default_factory=VisionConfigs)


class StructuredOutput(Model):
    schema_: dict[str, Any] = Field(alias="schema")


class LLMData(NodeData):
    type: Literal["llm"] = "llm"
    model: ModelConfig
    prompt_template: list[PromptMessage] = Field(default_factory=list)
    memory: Memory | None = None
    context: ContextConfig = Field(default_factory=ContextConfig)
    structured_output_enabled: bool = False
    structured_output: StructuredOutput | None = None
    vision: Vision = Field(default_factory=Vision)

    @field_validator("vision", mode="before")
    @classmethod
    def _no_vision(cls, v):
        return v if v is not None else {}  # `vision: null` in an export: off

    def selectors(self):
        sel = self.context.variable_selector if self.context.enabled else None
        out = [("context.variable_selector", sel)] if sel else []
        if self.vision.enabled:
            out.append(("vision.configs.variable_selector", self.vision.configs.variable_selector))
        return out

    def templates(self):
        out = [(f"prompt_template.{i}.text", m.text) for i, m in enumerate(self.prompt_template)]
        if self.memory:
            out.append(("memory.query_prompt_template", self.memory.query_prompt_template))
        return out


class MultipleRetrievalConfig(Model):
    top_k: int = Field(default=4, ge=1, le=100)
    score_threshold: float | None = None
    reranking_enable: bool = False
    vector_weight: float = 0.0
    keyword_weight: float = 0.0


class KnowledgeRetrievalData(NodeData):
    type: Literal["knowledge-retrieval"] = "knowledge-retrieval"
    query_variable_selector: ValueSelector
    dataset_ids: list[str] = Field(min_length=1)
    retrieval_mode: Literal["single", "multiple"] = "multiple"
    search_method: Literal["semantic_search", "full_text_search", "hybrid_search", "default"] = "default"
    multiple_retrieval_config: MultipleRetrievalConfig = Field(default_factory=MultipleRetrievalConfig)
    # Dify's metadata filtering: "manual" applies `metadata_filtering_conditions` to the
    # retrieval; "automatic" (a model writes the filters) is not supported and reads as disabled.
    metadata_filtering_mode: Literal["disabled", "automatic", "manual"] = "disabled"
    metadata_filtering_conditions: MetadataFilteringConditions | None = None

    def selectors(self):
        return [("query_variable_selector", self.query_variable_selector)]


class ClassConfig(Model):
    id: str
    name: str


class QuestionClassifierData(NodeData):
    """Picks one class under a JSON-schema constraint; the edge handle is the class id."""

    type: Literal["question-classifier"] = "question-classifier"
    query_variable_selector: ValueSelector
    model: ModelConfig
    classes: list[ClassConfig] = Field(min_length=1)
    instruction: str = ""
    memory: Memory | None = None

    def selectors(self):
        return [("query_variable_selector", self.query_variable_selector)]

    def templates(self):
        return [("instruction", self.instruction)]

    def handles(self) -> set[str]:
        return {c.id for c in self.classes}


class ExtractParameter(Model):
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    type: Literal["string", "number", "bool", "boolean", "select", "array[string]", "array[number]",
                  "array[object]", "array[bool]"] = "string"
    description: str = ""
    required: bool = False
    options: list[str] = Field(default_factory=list)


class ParameterExtractorData(NodeData):
    type: Literal["parameter-extractor"] = "parameter-extractor"
    query: ValueSelector
    model: ModelConfig
    parameters: list[ExtractParameter] = Field(min_length=1)
    instruction: str = ""
    reasoning_mode: Literal["function_call", "prompt"] = "prompt"
    memory: Memory | None = None

    def selectors(self):
        return [("query", self.query)]

    def templates(self):
        return [("instruction", self.instruction)]


class AgentTool(Model):
    tool_name: str = Field(min_length=1)
    description: str = ""  # overrides the tools service's description when set


class AgentData(NodeData):
    """A tool-using agent: function calling through inference `tools`, or a ReAct loop whose
    every step is decoded under a JSON schema; at most `max_iterations` model calls."""

    type: Literal["agent"] = "agent"
    model: ModelConfig
    instruction: str = ""
    query: str = "{{#sys.query#}}"
    tools: list[AgentTool] = Field(default_factory=list)
    strategy: Literal["function_calling", "react"] = "function_calling"
    max_iterations: int = Field(default=5, ge=1, le=50)
    # The first model call's tool choice; later ones are "auto" so the agent can finish.
    tool_choice: Literal["auto", "required"] = "auto"
    memory: Memory | None = None

    def templates(self):
        return [("instruction", self.instruction), ("query", self.query)]
