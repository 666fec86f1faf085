"""Normalised operations: what an agent asks a backend to do, parsed, as policy rules see it.

One module per protocol (``http``, ``k8s``, ``sql``, ``shell``). Each parser either returns a
typed operation or raises ``UnparseableOperation``; it never crashes on arbitrary input and
never guesses. Policy decides what happens to what cannot be parsed (deny or approval), so an
unparseable request is never treated as harmless.
"""

from __future__ import annotations


class UnparseableOperation(ValueError):
    """The request could not be parsed into an operation; ``reason`` says why, for the agent."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
