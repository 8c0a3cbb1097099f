"""Which exceptions are the user's to fix: the CLI turns these into one line on stderr and exit 2."""

from __future__ import annotations


def user_error_types() -> tuple[type[BaseException], ...]:
    """Each package's typed error, plus missing files; imported lazily so `--help` stays fast."""
    types: list[type[BaseException]] = [FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError]
    from data.errors import DataError

    types.append(DataError)
    for module, name in (
        ("bp.errors", "BPError"),
        ("entropic.errors", "EntropicError"),
        ("committee.errors", "CommitteeError"),
        ("deep.errors", "DeepError"),
        ("figures.errors", "FigureError"),
    ):
        try:
            mod = __import__(module, fromlist=[name])
        except ImportError:
            continue
        types.append(getattr(mod, name))
    return tuple(types)
