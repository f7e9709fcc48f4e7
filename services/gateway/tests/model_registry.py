"""The loopback model registry of the console's pull tests: loom_common.testing's ModelServer,
which serves one tiny GGUF as `tiny`, under the names these tests use."""

from loom_common.testing import ModelServer as TinyRegistry

MODEL = TinyRegistry.MODEL

__all__ = ["MODEL", "TinyRegistry"]
