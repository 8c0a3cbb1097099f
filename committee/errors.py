"""The one exception type for bad input to the committee machine tools."""


class CommitteeError(ValueError):
    """A shape, hyper-parameter, file or setting the committee tools cannot use; the message says which."""
