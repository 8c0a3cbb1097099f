"""``python -m localentropy.cli ...``: the same as the ``localentropy`` command (torchrun launches it this way)."""

from localentropy.cli.main import main

main()
