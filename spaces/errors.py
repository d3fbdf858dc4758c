"""The two error types every host layer raises for what a user got wrong (spaces is the lowest host package).

The CLI maps both to exit 2 ("invalid input") and prints their message without a traceback; anything else
is either a known runtime failure (exit 1: a store, a transport, a board) or a bug (a traceback). A plain
ValueError therefore means "a bug in the caller", not "the user typed something wrong": raise
UserInputError where the value came from a user (an argument, a config, a file they named).
"""

from __future__ import annotations


class UserInputError(ValueError):
    """A value the user gave (argument, device name, space, arch string, file or folder they named) is wrong;
    the message names the culprit and, where it helps, what would be accepted."""


class UnknownNameError(KeyError):
    """A name that no registry holds (space, predictor kind, search, ...); the message lists the known names.

    A KeyError, so `except KeyError` around a lookup keeps working; `str()` is the message itself (a plain
    KeyError would print it inside quotes)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""
