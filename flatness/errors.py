"""The one exception type for bad arguments to the flatness measures."""


class FlatnessError(ValueError):
    """A model, data set, loss or setting that a flatness measure cannot use; the message says which."""
