"""Errors a user can act on: each names the file, the record and the problem.

Pipelines catch `PosefixError` at the top, print its message and exit non-zero, so bad input never ends in a
traceback. Library code raises these only for problems in what the user gave (files, options); bugs stay
ordinary exceptions.
"""

from __future__ import annotations

import os


class PosefixError(Exception):
    """Base class of user-facing errors. `str(err)` is the complete message."""


class InputError(PosefixError):
    """A problem in an input file.

    Args:
        path: the file.
        problem: what is wrong, in words a user understands.
        record: where in the file (for example "annotations[12] (image_id 10034180003, track_id 4)").
    """

    def __init__(self, path: str | os.PathLike | None, problem: str, record: str | None = None):
        self.path = None if path is None else os.fspath(path)
        self.problem = problem
        self.record = record
        where = self.path or "<input>"
        if record:
            where = f"{where}: {record}"
        super().__init__(f"{where}: {problem}")


class ConfigError(PosefixError):
    """A problem in a configuration file or a command-line override."""


class CheckpointError(PosefixError):
    """A checkpoint or weight file that cannot be used, and why."""
