"""Which exceptions are the user's to fix: the CLI turns these into one line on stderr and exit 2."""

from __future__ import annotations


def user_error_types() -> tuple[type[BaseException], ...]:
    """Each package's typed error, plus missing files; imported when an error happens, so start-up stays fast.
    """
    from localentropy.bp.errors import BPError
    from localentropy.committee.errors import CommitteeError
    from localentropy.data.errors import DataError
    from localentropy.deep.errors import DeepError
    from localentropy.entropic.errors import EntropicError
    from localentropy.figures.errors import FigureError
    from localentropy.flatness.errors import FlatnessError

    return (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError,
            DataError, BPError, EntropicError, CommitteeError, FigureError, DeepError, FlatnessError)
