"""The handover captures of :mod:`support.captures` are what the codec decodes."""

from __future__ import annotations

from lmaho_wire import decode
from support.captures import handover


def test_scenario_messages_decode_with_valid_checksums() -> None:
    for p in handover():
        if p.message is None:
            continue
        frame = p.encode()
        msg = decode(frame[14 + 40 :], p.src, p.dst)
        assert msg.name == p.message
        assert msg.checksum_ok
        assert not msg.findings
