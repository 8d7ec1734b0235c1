"""Wire codec for the LMA handover messages of draft-lim-netext-lma-handover-01.

The schema (:mod:`lmaho_wire.schema`) declares every message and option with
construct; this package's API decodes and builds them::

    from lmaho_wire import build, decode, option

    mh = build("PBU", sequence=7, flags={"A", "H"}, lifetime=400,
               options=[option("mn_identifier", subtype="NAI", identifier="mn1@lmaho.example")],
               src="2001:db8:b::1", dst="2001:db8:a::1")
    msg = decode(mh, "2001:db8:b::1", "2001:db8:a::1")
    assert msg.name == "PBU" and msg.checksum_ok
"""

from .capture import CaptureWriter, Frame, read_frames
from .codec import Finding, Message, Option, build, decode, option, padding
from .errors import CaptureError, ChecksumError, LmahoError, MalformedPacket
from .numbers import Numbers, load_numbers_file
from .packet import IPv6Payload, find_ipv6, peel_ipv6
from .registry import current_schema, use_numbers
from .values import FlagBits, Named, Timestamp

__all__ = [
    "CaptureError",
    "CaptureWriter",
    "ChecksumError",
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
    "find_ipv6",
    "load_numbers_file",
    "option",
    "padding",
    "peel_ipv6",
    "read_frames",
    "use_numbers",
]
