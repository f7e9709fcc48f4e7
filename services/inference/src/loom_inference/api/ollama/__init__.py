"""The Ollama API on port 11434."""
