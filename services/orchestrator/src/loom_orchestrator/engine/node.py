"""The contract of a node type, as the engine sees it, and the registry of node types.

A node type is a `Node[ConfigT]`: generic over its pydantic config (the `loom_common.dsl`
model of its `data`), it declares its DSL `type`, a `version` and its `Traits`, and runs as
`await node.run(data, ctx) -> NodeResult`. The engine looks a node up by its type and then
reads only these declarations, never comparing type names: what a node does to the run (answer
text, citations, the workflow's outputs, the branch taken, a loop's end) travels in its
`NodeResult`.

`version` names the node's behaviour: change it whenever the same config and inputs could give
other outputs, another branch or other side effects. The journal keeps each node execution's
version, and a run resumed on a worker whose node has another version fails with
`runner.NodeVersionChanged` instead of mixing results of two codes (docs/orchestrator.md).
"""

from __future__ import annotations

import typing
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from loom_common.dsl.base import NodeData
from loom_orchestrator.engine.context import NodeContext, NodeResult

ConfigT = TypeVar("ConfigT", bound=NodeData)


@dataclass(frozen=True)
class Traits:
    """What the engine must know about a node type to run it well."""

    pure: bool = False  # no side effect: its start is not journaled and its record is written in the background
    calls_model: bool = False  # calls the model: the model's timeout, its start noted alongside the call
    container: bool = False  # runs child scopes (iteration, loop): holds no slot, no timeout of its own
    entry: bool = False  # where a scope starts (start; iteration-start, loop-start unless the container names one)
    streams: bool = False  # its `text` output can stream to the client live, when a node that shows it is planned


class Node(ABC, Generic[ConfigT]):
    """A node type. Subclasses declare `type`, `version` and (unless all false) `traits`."""

    type: ClassVar[str]
    version: ClassVar[str]
    traits: ClassVar[Traits] = Traits()

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        for name in ("type", "version"):
            value = getattr(cls, name, None)
            if not isinstance(value, str) or not value:
                raise TypeError(f"node class {cls.__name__} must declare a non-empty str `{name}`")
        if not isinstance(cls.traits, Traits):
            raise TypeError(f"node class {cls.__name__}: `traits` must be a Traits")

    @abstractmethod
    async def run(self, data: ConfigT, ctx: NodeContext) -> NodeResult: ...

    def shows_first(self, data: ConfigT) -> tuple[str, ...] | None:
        """The selector whose value this node shows the client first (answer, end), if any: a
        streaming node that feeds it alone may stream that text live (topology.py)."""
        return None

    @classmethod
    def config_type(cls) -> type[NodeData] | None:
        """The pydantic config class this node is generic over (None when left open, `Node[Any]`)."""
        for base in getattr(cls, "__orig_bases__", ()):
            if typing.get_origin(base) is Node:
                (arg,) = typing.get_args(base)
                return arg if isinstance(arg, type) and issubclass(arg, NodeData) else None
        return None


class NodeRegistry(dict[str, Node[Any]]):
    """DSL node type -> the node that runs it. Only `Node`s go in (a test may swap the node
    that runs a type for a fake one of its own type)."""

    @classmethod
    def of(cls, nodes: Iterable[Node[Any]]) -> NodeRegistry:
        """Each node under its own `type`; refuses duplicates and a config whose `type` is another."""
        reg = cls()
        for node in nodes:
            if node.type in reg:
                raise ValueError(f"two nodes declare type {node.type!r}")
            config = node.config_type()
            declared = config.model_fields["type"].default if config is not None else node.type
            if declared != node.type:
                raise ValueError(f"node {type(node).__name__} ({node.type!r}) is generic over "
                                 f"{config.__name__}, the config of {declared!r}")
            reg[node.type] = node
        return reg

    def __setitem__(self, key: str, node: Node[Any]) -> None:
        if not isinstance(node, Node):
            raise TypeError(f"registry[{key!r}]: {type(node).__name__} is not a Node")
        super().__setitem__(key, node)

