"""localentropy: local entropy, local energy and entropic optimizers for flat minima.

Sub-packages (each a folder at the repository root, installed under this one name):
``localentropy.bp`` (Belief Propagation), ``localentropy.committee`` (committee machine and its
trainers), ``localentropy.entropic`` (optimizers, local energy), ``localentropy.data``,
``localentropy.deep``, ``localentropy.figures``, ``localentropy.cli``.
"""
import os as _os


def __getattr__(name):
    """``__version__``, read from the installed metadata when first asked for (keeps the command's start short)."""
    if name != "__version__":
        raise AttributeError(f"module 'localentropy' has no attribute {name!r}")
    from importlib import metadata

    try:
        version = metadata.version("localentropy")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        version = "0+unknown"
    globals()["__version__"] = version
    return version

# In a source checkout the sub-package folders are this folder's siblings (setup.cfg maps them);
# let `import localentropy.bp` find them there too, after this folder, so a checkout on sys.path
# behaves like the installed package. In an installed wheel they sit inside this folder.
_root = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
if _os.path.isfile(_os.path.join(_root, "setup.cfg")) and _os.path.isfile(_os.path.join(_root, "bp", "__init__.py")):
    __path__.append(_root)  # noqa: F821 (a package's __path__)
