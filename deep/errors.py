"""The one exception type of deep/: a model, augmentation or data pipeline asked for with bad arguments."""


class DeepError(ValueError):
    """An unknown architecture, a bad hyper-parameter or an input of the wrong shape; the message says which."""
