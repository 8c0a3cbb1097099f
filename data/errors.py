"""The one exception type for data the toolkit cannot find or read."""


class DataError(ValueError):
    """A data file or folder that is missing, corrupt or of the wrong kind; the message says which."""
