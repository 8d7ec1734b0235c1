"""Reading and writing pcap / pcapng files (via dpkt), with errors a user can act on."""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Literal

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


@dataclass(frozen=True, slots=True)
class Frame:
    """One captured frame: 1-based number, time in seconds, link type and bytes."""

    number: int
    time: float
    linktype: int
    data: bytes


def read_frames(path: str | os.PathLike[str]) -> Iterator[Frame]:
    """Yield every frame of a pcap or pcapng file, streaming.

    Raises CaptureError for a missing, unreadable or corrupt file; a file cut
    short in its last record ends the iteration with a CaptureError too, after
    the frames that could be read.
    """
    p = Path(path)
    try:
        fh = p.open("rb")
    except FileNotFoundError:
        raise CaptureError(f"{p}: no such file") from None
    except IsADirectoryError:
        raise CaptureError(f"{p}: is a directory, not a capture file") from None
    except OSError as e:
        raise CaptureError(f"{p}: cannot open: {e.strerror}") from None
    with fh:
        yield from _read_open(fh, str(p))


def _read_open(fh: BinaryIO, name: str) -> Iterator[Frame]:
    magic = fh.read(4)
    fh.seek(0)
    if len(magic) < 4:
        raise CaptureError(f"{name}: empty or truncated file, not a pcap or pcapng capture")
    if magic in PCAP_MAGICS:
        yield from _read_pcap(fh, name)
        return
    if magic != PCAPNG_MAGIC:
        raise CaptureError(f"{name}: not a pcap or pcapng file (starts with {magic.hex()})")
    import dpkt  # here, not at the top: only pcapng needs it, and it is slow to import

    try:
        reader = dpkt.pcapng.Reader(fh)
        linktype = reader.datalink()
    except (ValueError, struct.error, dpkt.Error, EOFError) as e:
        raise CaptureError(f"{name}: corrupt pcapng header: {e or type(e).__name__}") from None
    number = 0
    it = iter(reader)
    while True:
        try:
            ts, buf = next(it)
        except StopIteration:
            return
        except (ValueError, struct.error, dpkt.Error, EOFError, TypeError) as e:
            raise CaptureError(
                f"{name}: corrupt block after frame {number}: {e or type(e).__name__}"
            ) from None
        number += 1
        yield Frame(number, float(ts), linktype, bytes(buf))


_PCAP_FILE_HEADER = 24
_PCAP_RECORD_HEADER = 16


def _read_pcap(fh: BinaryIO, name: str) -> Iterator[Frame]:
    # Read by hand rather than through dpkt.pcap.Reader: dpkt hands back a short
    # frame when a record is cut off, and a cut-off capture must be an error.
    header = fh.read(_PCAP_FILE_HEADER)
    if len(header) < _PCAP_FILE_HEADER:
        raise CaptureError(f"{name}: truncated pcap file header ({len(header)} of 24 octets)")
    order = "<" if header[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    divisor = 1e9 if header[:4] in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d") else 1e6
    snaplen, linktype = struct.unpack(order + "II", header[16:24])
    # The top bits carry FCS information (pcap-linktype(7)); libpcap's LT_LINKTYPE mask.
    linktype &= 0x03FFFFFF
    record = struct.Struct(order + "IIII")
    number = 0
    while True:
        head = fh.read(_PCAP_RECORD_HEADER)
        if not head:
            return
        if len(head) < _PCAP_RECORD_HEADER:
            raise CaptureError(
                f"{name}: truncated record header after frame {number} ({len(head)} of 16 octets)"
            )
        seconds, fraction, caplen, _origlen = record.unpack(head)
        if caplen > max(snaplen, 262144):
            raise CaptureError(
                f"{name}: record {number + 1} claims {caplen} captured octets, "
                f"more than the snapshot length {snaplen}"
            )
        data = fh.read(caplen)
        if len(data) < caplen:
            raise CaptureError(
                f"{name}: frame {number + 1} cut off: {len(data)} of {caplen} octets present"
            )
        number += 1
        yield Frame(number, seconds + fraction / divisor, linktype, data)


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
