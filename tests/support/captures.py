"""Handover captures built with the codec, step by step as docs/wire-format.md section 7 says.

The check and ladder tests start from :func:`handover` (one MN's complete
handover with its data plane) or one of its failure variants, change a packet
to inject the fault under test, and write the capture with :func:`write`.
Kept independent of ``lmaho craft`` on purpose: these captures are the
checker's own reference, written from the document, not from the crafter.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from lmaho_wire import CaptureWriter, Option, Timestamp, build, option
from lmaho_wire.packet import ethernet_header, ipv6_header, mac_bytes

IPPROTO_IPV6 = 41
IPPROTO_MH = 135
IPPROTO_UDP = 17

CN = "2001:db8:c::1"
PLMA = "2001:db8:a::1"
NLMA = "2001:db8:a::2"
OTHER_LMA = "2001:db8:a::9"
BMAG = "2001:db8:b::1"
POLICY_STORE = "2001:db8:5::1"

MACS = {
    CN: "02:00:00:00:0c:01",
    PLMA: "02:00:00:00:0a:01",
    NLMA: "02:00:00:00:0a:02",
    OTHER_LMA: "02:00:00:00:0a:09",
    BMAG: "02:00:00:00:0b:01",
    POLICY_STORE: "02:00:00:00:05:01",
}
HOP = 0.002  # seconds between consecutive packets


@dataclass(frozen=True)
class Mobile:
    """One MN: identifier, link-layer ID (its MAC), prefix and the address it uses."""

    number: int = 1

    @property
    def mn_id(self) -> str:
        return f"mn{self.number}@lmaho.example"

    @property
    def mac(self) -> str:
        return f"02:00:00:01:{(self.number >> 8) & 0xFF:02x}:{self.number & 0xFF:02x}"

    @property
    def prefix(self) -> str:
        return f"2001:db8:{self.number}::"

    @property
    def address(self) -> str:
        return f"2001:db8:{self.number}::100"


@dataclass
class Packet:
    """One frame to write: a Mobility Header message, or a data packet (maybe tunnelled)."""

    step: str
    time: float
    src: str
    dst: str
    message: str | None = None  # None: a data packet from src to dst
    fields: dict[str, Any] = field(default_factory=dict)
    options: list[Option] = field(default_factory=list)
    tunnel: tuple[str, str] | None = None  # outer IPv6 source and destination
    src_mac: str = "02:00:00:00:00:01"
    dst_mac: str = "02:00:00:00:00:02"
    corrupt_checksum: bool = False
    hop_limit: int = 64  # of the outermost IPv6 header: lower where a router forwarded it

    def encode(self) -> bytes:
        if self.message is not None:
            payload = build(
                self.message, options=self.options, src=self.src, dst=self.dst, **self.fields
            )
            if self.corrupt_checksum:
                payload = payload[:4] + bytes([payload[4] ^ 0xFF]) + payload[5:]
            packet = ipv6_header(
                _raw(self.src), _raw(self.dst), IPPROTO_MH, len(payload), self.hop_limit
            )
        else:
            body = b"lmaho data plane"
            udp = (4000).to_bytes(2, "big") + (4000).to_bytes(2, "big")
            udp += (8 + len(body)).to_bytes(2, "big") + b"\x00\x00" + body
            payload = udp
            packet = ipv6_header(_raw(self.src), _raw(self.dst), IPPROTO_UDP, len(payload))
        packet += payload
        if self.tunnel is not None:
            outer_src, outer_dst = self.tunnel
            packet = ipv6_header(_raw(outer_src), _raw(outer_dst), IPPROTO_IPV6, len(packet)) + (
                packet
            )
        return ethernet_header(mac_bytes(self.dst_mac), mac_bytes(self.src_mac)) + packet


def _raw(address: str) -> bytes:
    return ipaddress.IPv6Address(address).packed


def _identity(mobile: Mobile) -> list[Option]:
    return [
        option("mn_identifier", subtype="NAI", identifier=mobile.mn_id),
        option("home_network_prefix", prefix_length=64, prefix=mobile.prefix),
    ]


def _timestamp(t: float) -> Option:
    return option("timestamp", timestamp=Timestamp.from_float(t))


def _mh(step: str, t: float, src: str, dst: str, message: str, **kw: Any) -> Packet:
    return Packet(step, t, src, dst, message, src_mac=MACS[src], dst_mac=MACS[dst], **kw)


def signalling(
    mobile: Mobile = Mobile(),
    t0: float = 1000.0,
    *,
    seq: int = 1,
    hack_status: str = "ACCEPTED",
    update_status: str = "ACCEPTED",
    pba_status: str = "ACCEPTED",
) -> list[Packet]:
    """Steps (b) to (i) of one handover; a refusal ends it as section 7 says."""
    t = [t0 + i * HOP for i in range(8)]
    ll_id = option("mn_link_layer_identifier", identifier=mobile.mac)
    att = option("access_technology_type", technology="IEEE_802_11")
    packets = [
        _mh(
            "b",
            t[0],
            BMAG,
            PLMA,
            "LMA_HO_Req",
            fields={"sequence": seq, "lifetime": 0},
            options=[
                *_identity(mobile),
                option("new_ap_id", id_type="NAME", identifier="ap-2"),
                _timestamp(t[0]),
                ll_id,
                att,
            ],
        ),
        _mh(
            "c",
            t[1],
            PLMA,
            NLMA,
            "LMA_HO_Init",
            fields={"sequence": seq, "flags": {"T"}, "lifetime": 3600},
            options=[
                *_identity(mobile),
                option("mag_ipv6_address", address_length=128, address=BMAG),
                _timestamp(t[1]),
                ll_id,
                att,
            ],
        ),
    ]
    hack_ok = hack_status == "ACCEPTED"
    packets.append(
        _mh(
            "d",
            t[2],
            NLMA,
            PLMA,
            "LMA_HAck",
            fields={
                "sequence": seq,
                "status": hack_status,
                "flags": {"T"} if hack_ok else set(),
                "lifetime": 3600 if hack_ok else 0,
            },
            options=_identity(mobile),
        )
    )
    response_options = [*_identity(mobile), ll_id]
    if hack_ok:
        response_options.append(option("lma_address", option_code="IPV6", address=NLMA))
    packets.append(
        _mh(
            "e",
            t[3],
            PLMA,
            BMAG,
            "LMA_HO_Resp",
            fields={
                "sequence": seq,
                "status": "ACCEPTED" if hack_ok else "NLMA_REJECTED_HANDOVER",
                "lifetime": 3600 if hack_ok else 0,
            },
            options=response_options,
        )
    )
    if not hack_ok:
        return packets
    pbu_stamp = _timestamp(t[4])
    proxy_options = [
        *_identity(mobile),
        option("handoff_indicator", indicator="NOT_CHANGED"),
        att,
        pbu_stamp,
        ll_id,
    ]
    packets.append(
        _mh(
            "f",
            t[4],
            BMAG,
            NLMA,
            "PBU",
            fields={"sequence": seq, "flags": {"A", "H"}, "lifetime": 3600},
            options=proxy_options,
        )
    )
    packets.append(
        _mh(
            "g",
            t[5],
            NLMA,
            POLICY_STORE,
            "Update",
            fields={"sequence": seq},
            options=[
                option("mn_identifier", subtype="NAI", identifier=mobile.mn_id),
                option("lma_address", option_code="IPV6", address=NLMA),
                option("previous_lma_address", option_code="IPV6", address=PLMA),
            ],
        )
    )
    update_ok = update_status == "ACCEPTED"
    packets.append(
        _mh(
            "h",
            t[6],
            POLICY_STORE,
            NLMA,
            "Update_Ack",
            fields={"sequence": seq, "status": update_status},
            options=[option("mn_identifier", subtype="NAI", identifier=mobile.mn_id)],
        )
    )
    if not update_ok:
        pba_status = "REASON_UNSPECIFIED"
    packets.append(
        _mh(
            "i",
            t[7],
            NLMA,
            BMAG,
            "PBA",
            fields={
                "sequence": seq,
                "status": pba_status,
                "lifetime": 3600 if pba_status == "ACCEPTED" else 0,
            },
            options=proxy_options,
        )
    )
    return packets


def data_plane(mobile: Mobile = Mobile(), t0: float = 1000.1) -> list[Packet]:
    """Steps (j) and (k) after a successful handover: downlink CN->...->MN, uplink back."""
    down = [
        ("j", CN, PLMA, None),
        ("j", PLMA, NLMA, (PLMA, NLMA)),
        ("j", NLMA, BMAG, (NLMA, BMAG)),
        ("j", BMAG, mobile.mac, None),
    ]
    up = [
        ("k", mobile.mac, BMAG, None),
        ("k", BMAG, NLMA, (BMAG, NLMA)),
        ("k", NLMA, CN, None),
    ]
    packets = []
    for i, (step, hop_src, hop_dst, tunnel) in enumerate(down + up):
        src, dst = (CN, mobile.address) if step == "j" else (mobile.address, CN)
        packets.append(
            Packet(
                step,
                t0 + i * HOP,
                src,
                dst,
                tunnel=tunnel,
                src_mac=MACS.get(hop_src, hop_src),
                dst_mac=MACS.get(hop_dst, hop_dst),
            )
        )
    return packets


def handover(
    mobile: Mobile = Mobile(),
    t0: float = 1000.0,
    *,
    hack_status: str = "ACCEPTED",
    update_status: str = "ACCEPTED",
    pba_status: str = "ACCEPTED",
) -> list[Packet]:
    """A whole handover; the data plane follows only when it succeeded."""
    packets = signalling(
        mobile, t0, hack_status=hack_status, update_status=update_status, pba_status=pba_status
    )
    if packets[-1].step == "i" and packets[-1].fields["status"] == "ACCEPTED":
        packets += data_plane(mobile, t0 + 0.1)
    return packets


def lost_message(mobile: Mobile = Mobile(), t0: float = 1000.0) -> list[Packet]:
    """(d) LMA_HAck lost on the way back: the PLMA sends (c) again after 1 s, gets (d) again.

    The lost copy is in the capture (seen before it was lost), like a capture
    taken at the NLMA; everything after (c) shifts by the timeout.
    """
    packets = handover(mobile, t0)
    init = next(p for p in packets if p.step == "c")
    hack = next(p for p in packets if p.step == "d")
    index = packets.index(hack)
    again = replace(init, time=init.time + 1.0, options=list(init.options))
    answer = replace(hack, time=init.time + 1.0 + HOP)
    for p in packets[index + 1 :]:
        p.time += 1.0 + HOP
    packets[index + 1 : index + 1] = [again, answer]
    return packets


def find(packets: list[Packet], step: str) -> Packet:
    return next(p for p in packets if p.step == step and p.message is not None)


def write(path: Path, packets: list[Packet]) -> Path:
    with CaptureWriter(path) as writer:
        for p in sorted(packets, key=lambda p: p.time):
            writer.write(p.encode(), p.time)
    return path


def with_options(packet: Packet, **replacements: Option | None) -> None:
    """Swap (or, with None, drop) the options of a packet by schema key."""
    kept: list[Option] = []
    for opt in packet.options:
        if opt.key in replacements:
            new = replacements[opt.key]
            if new is not None:
                kept.append(new)
        else:
            kept.append(opt)
    packet.options = kept
