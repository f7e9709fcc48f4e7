"""loom-inference: Model engine and router: local llama.cpp/vLLM engines and remote providers
behind one gRPC interface, plus the Ollama and OpenAI HTTP APIs on port 11434.
"""

__version__ = "0.1.0"
