"""The prompts stage's own error, importable without the LLM code (stages/__init__.py catches it)."""

from __future__ import annotations


class PromptGenerationError(RuntimeError):
    """No valid answer for a list after max_attempts; `attempts` holds every answer so far."""

    def __init__(self, message: str, attempts: list[dict]):
        super().__init__(message)
        self.attempts = attempts
