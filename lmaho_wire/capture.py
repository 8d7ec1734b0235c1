"""Reading and writing pcap / pcapng files, with errors a user can act on.

Both formats are read here: a cut-off or lying record must be an error, not a
short frame, and a pcapng file may hold several interfaces with different
link types (dpkt's reader takes the first interface's for every packet and
skips Simple Packet Blocks). dpkt writes.
"""

from __future__ import annotations

import gzip
import os
import struct
import sys
import zlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Literal, NamedTuple, Protocol

from .errors import CaptureError

if TYPE_CHECKING:
    import dpkt

LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276
# BSD loopback/raw values that some tools write for raw IP.
LINKTYPE_RAW_ALIASES = {LINKTYPE_RAW, 12, 14, LINKTYPE_IPV6}

PCAP_MAGICS = {b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d"}
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"


class Frame(NamedTuple):
    """One captured frame: 1-based number, time in seconds, link type and bytes.

    ``uncaptured``: octets the packet had on the wire past ``data``, which the capture
    did not keep (its snapshot length, ``tcpdump -s``).

    A named tuple rather than a frozen dataclass: made once per frame read, and
    twice as fast to make.
    """

    number: int
    time: float
    linktype: int
    data: bytes
    uncaptured: int = 0


def read_frames(
    path: str | os.PathLike[str], *, on_read: Callable[[int], None] | None = None
) -> Iterator[Frame]:
    """Yield every frame of a pcap or pcapng file, streaming; ``"-"`` reads
    standard input (``tcpdump -w - | lmaho decode -``), as frames arrive.
    ``on_read`` is told the octets read so far after each read (a progress bar).

    Raises CaptureError for a missing, unreadable or corrupt file; a file cut
    short in its last record ends the iteration with a CaptureError too, after
    the frames that could be read.
    """
    if str(path) == "-":
        fh, name = standard_input(), "standard input"
        opened: AbstractContextManager[object] = nullcontext()  # not ours to close
    else:
        p = Path(path)
        try:
            fh = opened = p.open("rb")
        except FileNotFoundError:
            raise CaptureError(f"{p}: no such file") from None
        except IsADirectoryError:
            raise CaptureError(f"{p}: is a directory, not a capture file") from None
        except OSError as e:
            raise CaptureError(f"{p}: cannot open: {e.strerror}") from None
        name = str(p)
    source: _Source = fh if on_read is None else _Counted(fh, on_read)
    with opened:
        # A failing read (EIO, a bad descriptor) is a CaptureError.
        try:
            yield from _records(source, name)
        except OSError as e:
            raise CaptureError(f"{name}: read error: {e.strerror or e}") from None


class _Source(Protocol):
    """What the readers need of an open capture (a file's ``read1`` too, where it has one)."""

    def read(self, n: int = -1, /) -> bytes: ...


class _Counted:
    """A capture's file that tells ``on_read`` how many octets it has handed out."""

    def __init__(self, fh: BinaryIO, on_read: Callable[[int], None]) -> None:
        self._fh = fh
        self._read1 = getattr(fh, "read1", fh.read)
        self._on_read = on_read
        self._octets = 0

    def _count(self, data: bytes) -> bytes:
        self._octets += len(data)
        self._on_read(self._octets)
        return data

    def read(self, n: int = -1) -> bytes:
        return self._count(self._fh.read(n))

    def read1(self, n: int = -1) -> bytes:
        return self._count(self._read1(n))


def standard_input() -> BinaryIO:
    """Standard input as bytes, or a CaptureError when the process has none."""
    if sys.stdin is None:
        raise CaptureError("standard input: closed, nothing to read")
    return sys.stdin.buffer


def _records(fh: _Source, name: str, *, compressed: bool = False) -> Iterator[Frame]:
    """The reader of an open capture, pcap or pcapng as its magic says (gzip-compressed
    too, as Wireshark reads them: once, not a gzip inside a gzip)."""
    # The readers take the magic already read: a pipe cannot seek back.
    magic = fh.read(4)
    if len(magic) < 4:
        raise CaptureError(f"{name}: empty or truncated file, not a pcap or pcapng capture")
    if magic.startswith(_GZIP_MAGIC) and not compressed:
        return _records(_Gunzipped(magic, fh, name), name, compressed=True)
    for packed, (kind, command) in _OTHER_COMPRESSIONS.items():
        if magic.startswith(packed):
            raise CaptureError(
                f"{name}: a {kind}-compressed capture; lmaho reads gzip only: "
                f"{command} {name} | lmaho ... -"
            )
    if magic in PCAP_MAGICS:
        return _read_pcap(_Stream(fh, magic), name)
    if magic != PCAPNG_MAGIC:
        raise CaptureError(f"{name}: not a pcap or pcapng file (starts with {magic.hex()})")
    return _read_pcapng(_Stream(fh, magic), name)


_GZIP_MAGIC = b"\x1f\x8b"
# Compressions Wireshark's newer versions read and Python's library does not.
_OTHER_COMPRESSIONS = {
    b"\x28\xb5\x2f\xfd": ("zstd", "zstd -dc"),
    b"\x04\x22\x4d\x18": ("lz4", "lz4 -dc"),
    b"BZh": ("bzip2", "bzip2 -dc"),
    b"\xfd7zXZ": ("xz", "xz -dc"),
}


class _Prefixed:
    """``fh`` with ``first`` (octets already read from it) put back in front."""

    def __init__(self, first: bytes, fh: _Source) -> None:
        self._first = first
        self._fh = fh

    def read(self, n: int = -1, /) -> bytes:
        if not self._first:
            return self._fh.read(n)
        if n < 0:
            out, self._first = self._first + self._fh.read(), b""
        else:
            out, self._first = self._first[:n], self._first[n:]
        return out


class _Gunzipped:
    """A gzip-compressed capture, decompressed as it is read; a damaged or cut stream
    is a CaptureError after the frames before the damage."""

    def __init__(self, magic: bytes, fh: _Source, name: str) -> None:
        self._gz = gzip.GzipFile(fileobj=_Prefixed(magic, fh), mode="rb")  # type: ignore[call-overload]  # never seeks
        self._name = name

    def read(self, n: int = -1, /) -> bytes:
        return self._decompressed(self._gz.read, n)

    def read1(self, n: int = -1, /) -> bytes:
        return self._decompressed(self._gz.read1, n)

    def _decompressed(self, read: Callable[[int], bytes], n: int) -> bytes:
        try:
            return read(n)
        except EOFError:
            raise CaptureError(f"{self._name}: the gzip stream ends early") from None
        except (gzip.BadGzipFile, zlib.error) as e:
            raise CaptureError(f"{self._name}: damaged gzip stream: {e}") from None


# Octets asked of the file at once: records are parsed out of this buffer, not read one
# by one (two reads and two objects per record cost more than parsing them).
_CHUNK = 1 << 18
# A Frame made without NamedTuple's Python-level __new__: one is made per record.
_new_tuple = tuple.__new__


class _Stream:
    """An open capture's octets, read in chunks of up to ``_CHUNK``.

    The fast loops parse the records that lie whole in ``buf`` from ``pos``;
    :meth:`read` serves the careful path, octets as ``fh.read`` would give them.
    ``read1`` hands back what a pipe has, so frames piped in are still seen as
    they arrive.
    """

    __slots__ = ("_read1", "buf", "pos")

    def __init__(self, fh: _Source, already: bytes) -> None:
        self.buf = already  # octets read but not yet parsed, from pos on
        self.pos = 0
        self._read1 = getattr(fh, "read1", fh.read)

    def fill(self, need: int) -> None:
        """Have ``need`` octets from ``pos`` in ``buf``, unless the input ends first."""
        have = len(self.buf) - self.pos
        if have >= need:
            return
        parts = [self.buf[self.pos :]]
        while have < need:
            chunk = self._read1(max(_CHUNK, need - have))
            if not chunk:
                break
            parts.append(chunk)
            have += len(chunk)
        self.buf = b"".join(parts)
        self.pos = 0

    def read(self, n: int) -> bytes:
        """Up to ``n`` octets: fewer only at the end of the input."""
        self.fill(n)
        start = self.pos
        data = self.buf[start : start + n]
        self.pos = start + len(data)
        return data


_PCAP_FILE_HEADER = 24
_PCAP_RECORD_HEADER = 16


def _read_pcap(stream: _Stream, name: str) -> Iterator[Frame]:
    # Read by hand rather than through dpkt.pcap.Reader: dpkt hands back a short
    # frame when a record is cut off, and a cut-off capture must be an error.
    header = stream.read(_PCAP_FILE_HEADER)
    if len(header) < _PCAP_FILE_HEADER:
        raise CaptureError(f"{name}: truncated pcap file header ({len(header)} of 24 octets)")
    order = "<" if header[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    divisor = 1e9 if header[:4] in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d") else 1e6
    snaplen, linktype = struct.unpack(order + "II", header[16:24])
    # The top bits carry FCS information (pcap-linktype(7)); libpcap's LT_LINKTYPE mask.
    linktype &= 0x03FFFFFF
    record = struct.Struct(order + "IIII").unpack_from
    # A record may exceed a small snaplen (some writers set it low), not 256 KiB.
    caplen_limit = max(snaplen, 262144)
    number = 0
    while True:
        # The records whole in the buffer, as they come.
        buf, pos = stream.buf, stream.pos
        size = len(buf)
        while pos + _PCAP_RECORD_HEADER <= size:
            seconds, fraction, caplen, length = record(buf, pos)
            start = pos + _PCAP_RECORD_HEADER
            if caplen > caplen_limit or start + caplen > size:
                break
            pos = start + caplen
            number += 1
            yield _new_tuple(
                Frame,
                (
                    number,
                    seconds + fraction / divisor,
                    linktype,
                    buf[start:pos],
                    length - caplen if length > caplen else 0,
                ),
            )
        stream.pos = pos
        # The record the buffer cuts, or one that is wrong: read and judged carefully.
        head = stream.read(_PCAP_RECORD_HEADER)
        if not head:
            return
        if len(head) < _PCAP_RECORD_HEADER:
            raise CaptureError(
                f"{name}: truncated record header after frame {number} ({len(head)} of 16 octets)"
            )
        seconds, fraction, caplen, length = record(head, 0)
        if caplen > caplen_limit:
            raise CaptureError(
                f"{name}: record {number + 1} claims {caplen} captured octets, "
                f"more than the snapshot length {snaplen}"
            )
        data = stream.read(caplen)
        if len(data) < caplen:
            raise CaptureError(
                f"{name}: frame {number + 1} cut off: {len(data)} of {caplen} octets present"
            )
        number += 1
        yield Frame(number, seconds + fraction / divisor, linktype, data, max(length - caplen, 0))


# pcapng (draft-ietf-opsawg-pcapng): block types, options, and a bound on a
# block's size (Wireshark's own, 16 MiB) so that a lying length cannot make
# the reader allocate without limit.
_PCAPNG_IDB, _PCAPNG_PB, _PCAPNG_SPB, _PCAPNG_EPB = 1, 2, 3, 6
_PCAPNG_BYTE_ORDER = {b"\x1a\x2b\x3c\x4d": ">", b"\x4d\x3c\x2b\x1a": "<"}
_PCAPNG_OPT_TSRESOL, _PCAPNG_OPT_TSOFFSET = 9, 14
_PCAPNG_MAX_BLOCK = 16 * 1024 * 1024
# An Enhanced Packet Block: type, length, interface, time high and low, captured and
# original length (28 octets), the packet, padding, options, the length again (4).
_EPB_FRAMING = 32


@dataclass(frozen=True, slots=True)
class _Interface:
    """What an Interface Description Block says about the packets that name it."""

    linktype: int
    snaplen: int
    ticks_per_second: float
    offset: int  # seconds added to every timestamp (if_tsoffset)


def _damaged(name: str, number: int, what: str) -> CaptureError:
    """The error for a damaged block: where it is (made only when raised), and ``what``."""
    return CaptureError(f"{name}: block after frame {number}{what}")


def _read_pcapng(stream: _Stream, name: str) -> Iterator[Frame]:
    order = ">"
    interfaces: list[_Interface] = []
    number = 0
    epb = trailer = None
    while True:
        if interfaces:
            # The Enhanced Packet Blocks whole in the buffer and sound, as they come; any
            # other block, or one the buffer cuts or that is wrong, goes the careful way.
            assert epb is not None and trailer is not None
            buf, pos = stream.buf, stream.pos
            size = len(buf)
            clocks = [(i.offset, i.ticks_per_second, i.linktype) for i in interfaces]
            while pos + _EPB_FRAMING <= size:
                block_type, length, iface, high, low, caplen, wire = epb(buf, pos)
                end = pos + length
                if (
                    block_type != _PCAPNG_EPB
                    or end > size
                    or length % 4
                    or length < _EPB_FRAMING + caplen
                    or length > _PCAPNG_MAX_BLOCK
                    or iface >= len(clocks)
                    or trailer(buf, end - 4)[0] != length
                ):
                    break
                offset, ticks, linktype = clocks[iface]
                number += 1
                yield _new_tuple(
                    Frame,
                    (
                        number,
                        offset + ((high << 32) | low) / ticks,
                        linktype,
                        buf[pos + 28 : pos + 28 + caplen],
                        wire - caplen if wire > caplen else 0,
                    ),
                )
                pos = end
            stream.pos = pos
        head = stream.read(8)
        if not head:
            return
        if len(head) < 8:
            raise _damaged(name, number, f" cut off: {len(head)} of 8 header octets")
        if head[:4] == PCAPNG_MAGIC:
            # A Section Header Block: its byte-order magic sets the section's
            # byte order, and the section starts with no interfaces.
            byte_order = stream.read(4)
            if byte_order not in _PCAPNG_BYTE_ORDER:
                raise _damaged(name, number, ": not a pcapng section header")
            order = _PCAPNG_BYTE_ORDER[byte_order]
            epb = struct.Struct(order + "IIIIIII").unpack_from
            trailer = struct.Struct(order + "I").unpack_from
            body = _pcapng_body(stream, name, number, order, head, byte_order)
            if len(body) < 12:
                raise _damaged(name, number, f": section header of {len(body)} octets")
            major = struct.unpack(order + "H", body[:2])[0]
            if major != 1:
                raise _damaged(name, number, f": pcapng version {major}, only 1 exists")
            interfaces = []
            continue
        block_type = struct.unpack(order + "I", head[:4])[0]
        body = _pcapng_body(stream, name, number, order, head, b"")
        if block_type == _PCAPNG_IDB:
            interfaces.append(_pcapng_interface(body, order, name, number))
            continue
        if block_type in (_PCAPNG_EPB, _PCAPNG_PB):
            if len(body) < 20:
                raise _damaged(name, number, f": packet block of {len(body)} octets")
            if block_type == _PCAPNG_EPB:
                iface, high, low, caplen, wire = struct.unpack(order + "IIIII", body[:20])
            else:
                iface, _drops, high, low, caplen, wire = struct.unpack(order + "HHIIII", body[:20])
            timestamp = (high << 32) | low
            data = body[20 : 20 + caplen]
        elif block_type == _PCAPNG_SPB:
            # No interface ID and no time: interface 0, captured up to its snaplen.
            if len(body) < 4:
                raise _damaged(name, number, f": simple packet block of {len(body)} octets")
            iface, timestamp = 0, None
            caplen = wire = struct.unpack(order + "I", body[:4])[0]
            if interfaces and interfaces[0].snaplen:
                caplen = min(caplen, interfaces[0].snaplen)
            data = body[4 : 4 + caplen]
        else:
            continue  # name resolution, statistics, custom blocks: nothing to decode
        if iface >= len(interfaces):
            raise CaptureError(
                f"{name}: frame {number + 1} names interface {iface}, "
                f"but the section describes {len(interfaces)}"
            )
        if len(data) < caplen:
            raise CaptureError(
                f"{name}: frame {number + 1} claims {caplen} captured octets, "
                f"its block holds {len(data)}"
            )
        interface = interfaces[iface]
        time = 0.0
        if timestamp is not None:
            time = interface.offset + timestamp / interface.ticks_per_second
        number += 1
        yield Frame(number, time, interface.linktype, data, max(wire - caplen, 0))


def _pcapng_body(
    stream: _Stream, name: str, number: int, order: str, head: bytes, already: bytes
) -> bytes:
    """The body of the block whose first 8 octets are ``head`` (and the next
    ``already`` were read too): checked against its trailing length copy."""
    length = struct.unpack(order + "I", head[4:8])[0]
    if length < 12 + len(already) or length % 4 or length > _PCAPNG_MAX_BLOCK:
        raise _damaged(name, number, f": impossible block length {length}")
    rest = stream.read(length - 8 - len(already))
    if len(rest) < length - 8 - len(already):
        raise _damaged(name, number, f" cut off: {len(rest) + 8 + len(already)} of {length} octets")
    trailer = struct.unpack(order + "I", rest[-4:])[0]
    if trailer != length:
        raise _damaged(name, number, f": block length {length} at its start, {trailer} at its end")
    return rest[:-4]


def _pcapng_interface(body: bytes, order: str, name: str, number: int) -> _Interface:
    if len(body) < 8:
        raise _damaged(name, number, f": interface description of {len(body)} octets")
    linktype, _reserved, snaplen = struct.unpack(order + "HHI", body[:8])
    ticks, offset = 1e6, 0
    pos = 8
    while pos + 4 <= len(body):
        code, size = struct.unpack(order + "HH", body[pos : pos + 4])
        value = body[pos + 4 : pos + 4 + size]
        if code == 0 or len(value) < size:
            break
        if code == _PCAPNG_OPT_TSRESOL and size == 1:
            # High bit clear: 10^-n seconds per tick; set: 2^-n.
            exponent = value[0] & 0x7F
            ticks = float(2**exponent if value[0] & 0x80 else 10**exponent)
        elif code == _PCAPNG_OPT_TSOFFSET and size == 8:
            offset = struct.unpack(order + "q", value)[0]
        pos += 4 + (size + 3) // 4 * 4
    return _Interface(linktype, snaplen, ticks, offset)


class CaptureWriter:
    """Streams frames into a pcap or pcapng file; pcapng frames may carry a comment."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        fmt: Literal["pcap", "pcapng"] = "pcap",
        linktype: int = LINKTYPE_ETHERNET,
        snaplen: int = 65535,
    ) -> None:
        import dpkt  # here, not at the top: slow to import, and reading pcap does without

        self.path = Path(path)
        self.format = fmt
        self._pcapng_module = dpkt.pcapng
        try:
            self._fh = self.path.open("wb")
        except OSError as e:
            raise CaptureError(f"{self.path}: cannot write: {e.strerror}") from None
        if fmt == "pcapng":
            self._ng: dpkt.pcapng.Writer | None = dpkt.pcapng.Writer(
                self._fh, snaplen=snaplen, linktype=linktype
            )
            self._pcap: dpkt.pcap.Writer | None = None
        else:
            self._ng = None
            # nano=False keeps microsecond pcap, the format every tool reads.
            self._pcap = dpkt.pcap.Writer(self._fh, snaplen=snaplen, linktype=linktype)

    def write(self, data: bytes, time: float, comment: str | None = None) -> None:
        if self._pcap is not None:
            self._pcap.writepkt(data, ts=time)
            return
        assert self._ng is not None
        if comment:
            pcapng = self._pcapng_module
            opts = [
                pcapng.PcapngOptionLE(code=pcapng.PCAPNG_OPT_COMMENT, text=comment.encode()),
                pcapng.PcapngOptionLE(code=pcapng.PCAPNG_OPT_ENDOFOPT),
            ]
            epb = pcapng.EnhancedPacketBlockLE(pkt_data=data, opts=opts)
            self._ng.writepkt(epb, ts=time)
        else:
            self._ng.writepkt(data, ts=time)

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> CaptureWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
