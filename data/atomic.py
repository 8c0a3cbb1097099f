"""Writing a file atomically: into a temporary file beside the target, renamed over it only once complete.

The one I/O primitive every package above `data` shares (committee, cli): an interrupted or failed
write never leaves a half-written output behind, and an existing file is replaced only by a whole one.
(`bp` keeps its own copy: it imports numpy, numba and scipy only.)
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb", **open_kwargs):
    """``with atomic_open(path, "w", newline="") as fh: ...``: ``path`` appears, whole, when the block ends.

    The folder must exist. On any exception (Ctrl-C included) the temporary file is removed and
    ``path`` is left as it was. The file gets the usual permissions (0666 less the umask).
    """
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:  # name what the user controls, not the hidden temporary name
        folder = path.parent if str(path.parent) else Path(".")
        raise OSError(exc.errno, f"cannot write {path.name} in folder {folder} ({exc.strerror.lower()})",
                      str(folder)) from None
    try:
        with os.fdopen(fd, mode, **open_kwargs) as fh:
            yield fh
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
