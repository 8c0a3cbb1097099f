"""The figure recipes' typed error: bad options, an unusable cache entry, too few solutions."""


class FigureError(ValueError):
    """A figure cannot be computed as asked; the message names what is wrong, in one line."""
