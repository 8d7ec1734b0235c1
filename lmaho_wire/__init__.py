"""Wire codec for the LMA handover messages of draft-lim-netext-lma-handover-01.

The schema (:mod:`lmaho_wire.schema`) declares every message and option with
construct; a :class:`Codec` compiled from it decodes and builds them. The
functions use the default codec (the type numbers in force)::

    from lmaho_wire import build, decode, option

    mh = build("PBU", sequence=7, flags={"A", "H"}, lifetime=400,
               options=[option("mn_identifier", subtype="NAI", identifier="mn1@lmaho.example")],
               src="2001:db8:b::1", dst="2001:db8:a::1")
    msg = decode(mh, "2001:db8:b::1", "2001:db8:a::1")
    assert msg.name == "PBU" and msg.checksum_ok
"""

from .capture import CaptureWriter, Frame, read_frames
from .codec import (
    Codec,
    Finding,
    Message,
    Option,
    build,
    current_schema,
    decode,
    default_codec,
    option,
    padding,
    use_numbers,
)
from .errors import CaptureError, ChecksumError, LmahoError, MalformedPacket
from .numbers import Numbers, load_numbers_file
from .packet import IPv6Payload, find_ipv6, peel_ipv6
from .values import FlagBits, Named, Timestamp

__all__ = [
    "CaptureError",
    "CaptureWriter",
    "ChecksumError",
    "Codec",
    "Finding",
    "FlagBits",
    "Frame",
    "IPv6Payload",
    "LmahoError",
    "MalformedPacket",
    "Message",
    "Named",
    "Numbers",
    "Option",
    "Timestamp",
    "build",
    "current_schema",
    "decode",
    "default_codec",
    "find_ipv6",
    "load_numbers_file",
    "option",
    "padding",
    "peel_ipv6",
    "read_frames",
    "use_numbers",
]
