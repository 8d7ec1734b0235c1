"""The schema in force: that of the default codec (see :mod:`lmaho_wire.codec`)."""

from .codec import current_schema, default_codec, use_numbers, use_numbers_file

__all__ = ["current_schema", "default_codec", "use_numbers", "use_numbers_file"]
