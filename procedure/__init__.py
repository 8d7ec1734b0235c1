"""The LMA handover procedure as data: who takes part, its steps, its timers, its rules.

draft-lim-netext-lma-handover-01 section 4.2 (Figure 2), as docs/wire-format.md
sections 7 and 9 put it: the roles, steps (a) to (k) with the message each
sends and between which roles, the retransmission timers, and the names of
the rules a check of a capture reports. The entities (:mod:`lmaho_entities`)
run the procedure and the checker (:mod:`lmaho_check`) checks captures
against it; both take it from here, so neither depends on the other. What a
message carries on the wire is the codec's business (:mod:`lmaho_wire`), not
this module's: only message names appear here.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Literal


class Role(enum.StrEnum):
    """A part an entity plays, in the order of the draft's Figure 2, left to right.

    MAG and LMA are the PMIPv6 roles of entities seen outside a handover.
    """

    MN = "MN"
    BMAG = "bMAG"
    MAG = "MAG"
    PLMA = "PLMA"
    NLMA = "NLMA"
    LMA = "LMA"
    POLICY_STORE = "Policy store"
    CN = "CN"


# Each role by its name alone too, as signal.SIGINT is signal.Signals.SIGINT: the checker
# names roles per packet, and a module global is looked up several times faster.
MN = Role.MN
BMAG = Role.BMAG
MAG = Role.MAG
PLMA = Role.PLMA
NLMA = Role.NLMA
LMA = Role.LMA
POLICY_STORE = Role.POLICY_STORE
CN = Role.CN


Direction = Literal["downlink", "uplink"]


@dataclass(frozen=True, slots=True)
class Step:
    """One step of section 4.2: what it sends, from which role to which.

    Steps (b) to (i) send a Mobility Header ``message``. Step (a) happens on
    the access link and steps (j) and (k) are the data plane, in the
    ``direction`` they name: their ``message`` is "".
    """

    letter: str
    sender: Role
    receiver: Role
    message: str = ""
    direction: Direction | None = None

    @property
    def label(self) -> str:
        """How reports name the step: "(b) LMA_HO_Req", "(j) downlink data"."""
        if self.message:
            return f"({self.letter}) {self.message}"
        if self.direction is not None:
            return f"({self.letter}) {self.direction} data"
        return f"({self.letter}) new AP report"


STEPS: tuple[Step, ...] = (
    Step("a", Role.MN, Role.BMAG),
    Step("b", Role.BMAG, Role.PLMA, "LMA_HO_Req"),
    Step("c", Role.PLMA, Role.NLMA, "LMA_HO_Init"),
    Step("d", Role.NLMA, Role.PLMA, "LMA_HAck"),
    Step("e", Role.PLMA, Role.BMAG, "LMA_HO_Resp"),
    Step("f", Role.BMAG, Role.NLMA, "PBU"),
    Step("g", Role.NLMA, Role.POLICY_STORE, "Update"),
    Step("h", Role.POLICY_STORE, Role.NLMA, "Update_Ack"),
    Step("i", Role.NLMA, Role.BMAG, "PBA"),
    # Via the PLMA (the MN's anchor), the PLMA-NLMA tunnel and the bMAG.
    Step("j", Role.CN, Role.MN, direction="downlink"),
    # Via the bMAG and the NLMA.
    Step("k", Role.MN, Role.CN, direction="uplink"),
)
STEP_BY_LETTER: dict[str, Step] = {s.letter: s for s in STEPS}
#: The steps that send a Mobility Header message, (b) to (i), in order.
SIGNALLING_STEPS: tuple[Step, ...] = tuple(s for s in STEPS if s.message)
SIGNALLING_LETTERS = "".join(s.letter for s in SIGNALLING_STEPS)
STEP_BY_MESSAGE: dict[str, Step] = {s.message: s for s in SIGNALLING_STEPS}
#: The data plane's steps: letter -> direction ("j" -> "downlink").
DATA_STEPS: dict[str, Direction] = {s.letter: s.direction for s in STEPS if s.direction}

# Timers (docs/wire-format.md section 9): a request unanswered for INITIAL_TIMEOUT
# seconds is sent again, the timeout doubling each time, at most MAX_RETRANSMISSIONS times.
INITIAL_TIMEOUT = 1.0
MAX_RETRANSMISSIONS = 3
# A request is given up after its last retransmission times out: 1 + 2 + 4 + 8 s.
GIVE_UP_AFTER = INITIAL_TIMEOUT * (2 ** (MAX_RETRANSMISSIONS + 1) - 1)
# A MAG refreshes a binding when this fraction of the lifetime its LMA granted has passed
# (RFC 5213 leaves when to the MAG): for lifetimes above GIVE_UP_AFTER / 0.2 = 75 s the
# refresh's retransmissions all fit before the binding expires.
REFRESH_AT = 0.8


class Rule(enum.StrEnum):
    """A rule a check of a capture holds the procedure to; its value is the name reports use."""

    meaning: str

    def __new__(cls, name: str, meaning: str) -> Rule:
        rule = str.__new__(cls, name)
        rule._value_ = name
        rule.meaning = meaning
        return rule

    ORDER = "order", "steps follow the order (b) to (i) of the draft's section 4.2"
    MISSING_STEP = "missing-step", "every step the handover needs appears"
    UNEXPECTED_STEP = "unexpected-step", "nothing follows a failure that ends the handover"
    PAIRING = (
        "pairing",
        "every response answers a request: same peers, Sequence Number and MN",
    )
    MISSING_RESPONSE = "missing-response", "every request is answered"
    RETRANSMISSION = (
        "retransmission",
        "a retransmission keeps the Sequence Number (a PBU takes a larger one), "
        "waits for the doubling timer, at most 3 times",
    )
    PEER = "peer", "each message runs between the entities its step names"
    WRONG_NLMA = (
        "wrong-nlma",
        "LMA_HO_Resp names the NLMA the context went to, and the PBU goes there",
    )
    MN_ID = "mn-id", "every message of a handover carries the same MN Identifier"
    PREFIX = "prefix", "every message carries the MN's home network prefixes, unchanged"
    LINK_LAYER_ID = (
        "link-layer-id",
        "the MN Link-layer Identifier is the same wherever it appears",
    )
    MANDATORY_OPTION = "mandatory-option", "each message carries the options section 7 marks MUST"
    UNEXPECTED_OPTION = (
        "unexpected-option",
        "the draft's six messages carry only options section 7 lists for them",
    )
    FLAGS = (
        "flags",
        "the flags section 7 requires are set, and a refusal sets none of them",
    )
    STATUS = "status", "a refusal propagates: statuses agree along the handover"
    HANDOFF_INDICATOR = (
        "handoff-indicator",
        "the PBU's Handoff Indicator is 5 (not changed), and the PBA's matches",
    )
    TIMESTAMP = (
        "timestamp",
        "the PBA copies the PBU's Timestamp; each new request from a sender to a receiver "
        "carries a later Timestamp than the one before",
    )
    REPLAY = (
        "replay",
        "a request's Sequence Number advances (modulo 2^16) per sender, receiver and kind "
        "of request; only a retransmission repeats it",
    )
    REPEATED_OPTION = (
        "repeated-option",
        "an option the schema declares once-only appears at most once in a message",
    )
    PROXY_COA = "proxy-coa", "LMA_HO_Init's MAG IPv6 Address is the bMAG's address"
    POLICY_PROFILE = "policy-profile", "the Update names the NLMA as LMAA and the PLMA as PLMAA"
    CHECKSUM = "checksum", "every Mobility Header checksum is valid"
    MALFORMED = "malformed", "every Mobility Header decodes"
    ENCODING = "encoding", "options are aligned and padded as RFC 6275 6.2 says"
    TUNNEL = (
        "tunnel",
        "an MN's data uses only its tunnels: Tunnel0 (bMAG<=>PLMA) before the handover, "
        "PLMA=>NLMA and NLMA=>bMAG from (d), bMAG=>NLMA from (i)",
    )
    FOREIGN_PREFIX = (
        "foreign-prefix",
        "a tunnel carries only the prefixes of the MNs it was set up for",
    )
    LIFETIME = "lifetime", "LMA_HO_Init carries the remaining lifetime of the binding"
    CAPTURE_END = "capture-end", "the capture covers the whole handover"
    SNAPSHOT_LENGTH = (
        "snapshot-length",
        "the capture keeps every Mobility Header whole (its snapshot length, tcpdump -s)",
    )
