"""The bp package's typed error: bad input the user can fix (shapes, NaN, impossible parameters)."""

from __future__ import annotations


class BPError(ValueError):
    """Raised for user-fixable problems in the BP local-entropy computation; the CLI prints it on one line."""
