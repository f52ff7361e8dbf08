"""Errors that audiobench reports to users: one clear sentence plus what to do about it."""

from __future__ import annotations


class AudiobenchError(Exception):
    """Base class of every error audiobench explains to the user.

    ``str(error)`` is the sentence saying what went wrong; ``hint`` says what to do.
    """

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


class UnknownNameError(AudiobenchError):
    """A model, task, dataset, protocol or metric name that is not registered."""


class AudioFileError(AudiobenchError):
    """An audio file that is missing, empty, corrupt or otherwise unreadable."""


class CheckpointError(AudiobenchError):
    """A checkpoint that cannot be found, downloaded or loaded into the network."""


class DatasetError(AudiobenchError):
    """A dataset that is missing, partial or not in the expected layout."""


class ProtocolError(AudiobenchError):
    """An evaluation protocol that cannot run on the data given."""


class CacheWarning(UserWarning):
    """A cache entry that was damaged (and is recomputed), or another cache problem worth knowing."""
