"""``python -m lmaho_cli``: the ``lmaho`` command."""

from .main import main

main()
