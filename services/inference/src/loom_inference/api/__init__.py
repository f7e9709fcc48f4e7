"""Transports of the inference service: gRPC, and HTTP (Ollama and OpenAI APIs)."""
