"""The one exception type for bad arguments to the entropic optimizers and measures."""


class EntropicError(ValueError):
    """A hyper-parameter, model or tensor that the entropic tools cannot use; the message says which."""
