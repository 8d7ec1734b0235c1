"""The ``lmaho`` command line (installed as the ``lmaho_cli`` package)."""
