"""Backends: what actually runs a model (llama.cpp, sentence-transformers, vLLM, remote APIs)."""
