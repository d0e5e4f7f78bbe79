"""What the state store raises (kept apart, so that the command line can catch it without importing the store)."""

from __future__ import annotations


class StateUnavailable(Exception):
    """The shared state store cannot be reached; str() says which, and why, in words fit for a sentence."""


class LockLost(Exception):
    """An alert lock expired while its holder still worked (a pause longer than the lock): another process may
    hold it now, so this one must write nothing more."""
