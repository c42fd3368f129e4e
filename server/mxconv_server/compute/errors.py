"""Errors the compute core raises before doing any work. The API maps them to 4xx."""

from __future__ import annotations


class InvalidArgument(ValueError):
    """An argument that cannot work; ``field`` names it, the message says what to change."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class OverBudget(ValueError):
    """The work asked for is over a configured limit (maps to 413)."""
