"""The error types the CLI maps to exit codes (spaces is the lowest host package, so every layer may raise them).

The CLI maps both to exit 2 ("invalid input") and prints their message without a traceback; anything else
is either a known runtime failure (exit 1: a store, a transport, a board) or a bug (a traceback). A plain
ValueError therefore means "a bug in the caller", not "the user typed something wrong": raise
UserInputError where the value came from a user (an argument, a config, a file they named).
"""

from __future__ import annotations

from agents.registry import UnknownEntryError


class UserInputError(ValueError):
    """A value the user gave (argument, device name, space, arch string, file or folder they named) is wrong;
    the message names the culprit and, where it helps, what would be accepted."""


class UnknownNameError(UnknownEntryError):
    """A name that no host registry holds (space, predictor kind, search, ...); the message lists the known names.

    An agents.registry.UnknownEntryError, so one base class (a KeyError whose `str()` is the message itself)
    covers these and the backends, meters and transports of the agent's registries."""


class RuntimeFailure(RuntimeError):
    """A known failure at run time, not a mistake in the input and not a bug: a store, a transport, a board, a
    job or a search result. The CLI prints the message and exits 1; any other RuntimeError (torch's, say)
    is a bug and keeps its traceback."""
