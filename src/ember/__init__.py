"""Ember: a self-hosted, Ollama-compatible LLM service on llama.cpp."""

__version__ = "0.1.0"
