"""Reconstructing LMA handovers from a capture and checking them against the procedure.

The procedure is draft-lim-netext-lma-handover-01 section 4.2 as
docs/wire-format.md section 7 puts it on the wire: steps (b) to (i) are
Mobility Header messages, (j) and (k) the data plane through IPv6-in-IPv6
tunnels. :class:`ProcedureAnalyser` is fed every frame of a capture, in
order, and

* groups the signalling into handovers, one at a time per MN (by MN
  Identifier, or when that is wrong by the request a response answers or by
  the entities a step runs between);
* pairs requests and responses as the schema declares them
  (``MessageBody.role`` / ``.answers``): same peers, Sequence Number and MN;
* follows each MN's tunnels (Tunnel0 to the PLMA before, PLMA=>NLMA from a
  successful (d), NLMA<=>bMAG from a successful (i)) and checks that the data
  plane uses only them, and that a tunnel carries only its MNs' prefixes;
* when a handover is over, checks order, pairing, peers, MN ID, prefixes,
  mandatory options, flags, statuses and retransmissions, and decides its
  outcome (completed, failed at a step, abandoned, incomplete).

Memory is per open handover and per MN, never per frame: a handover is
closed (and handed to the caller) once it ended and ``linger`` seconds of
capture time have passed, when it stalls, when the MN starts another one,
or at the end of the capture.
"""

from __future__ import annotations

import ipaddress
import itertools
import statistics
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from .capture import LINKTYPE_ETHERNET
from .codec import Message, Option
from .dissect import FrameRecord
from .packet import mac_bytes
from .registry import current_schema
from .schema import is_success
from .values import FlagBits, Named, Timestamp

Address = ipaddress.IPv6Address
Prefix = ipaddress.IPv6Network
Severity = Literal["violation", "warning"]

# --- the procedure as data (docs/wire-format.md section 7) ----------------------

BMAG = "bMAG"
PLMA = "PLMA"
NLMA = "NLMA"
POLICY_STORE = "Policy store"
MN = "MN"
CN = "CN"
MAG = "MAG"
LMA = "LMA"

# Column order of a ladder: the draft's Figure 2, left to right.
ROLE_ORDER = (MN, BMAG, MAG, PLMA, NLMA, LMA, POLICY_STORE, CN)
ROLE_RANK = {role: i for i, role in enumerate(ROLE_ORDER)}

MN_ID = "mn_identifier"
HNP = "home_network_prefix"
NEW_AP_ID = "new_ap_id"
TIMESTAMP = "timestamp"
MN_LL_ID = "mn_link_layer_identifier"
ATT = "access_technology_type"
LLA = "link_local_address"
MAG_ADDRESS = "mag_ipv6_address"
LMA_ADDRESS = "lma_address"
PLMA_ADDRESS = "previous_lma_address"
HANDOFF = "handoff_indicator"


@dataclass(frozen=True, slots=True)
class StepSpec:
    """One row of the step table: message, sender and receiver roles, options, flags."""

    letter: str
    message: str
    sender: str
    receiver: str
    must: tuple[str, ...]
    may: tuple[str, ...] = ()
    must_on_success: tuple[str, ...] = ()
    # Flags that MUST be set; on a response, only when its status is a success.
    flags: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return f"({self.letter}) {self.message}"


STEPS: tuple[StepSpec, ...] = (
    StepSpec("b", "LMA_HO_Req", BMAG, PLMA, (MN_ID, HNP, NEW_AP_ID, TIMESTAMP), (MN_LL_ID, ATT)),
    StepSpec(
        "c",
        "LMA_HO_Init",
        PLMA,
        NLMA,
        (MN_ID, HNP, MAG_ADDRESS, TIMESTAMP),
        (MN_LL_ID, ATT, LLA, NEW_AP_ID),
        flags=("T",),
    ),
    StepSpec("d", "LMA_HAck", NLMA, PLMA, (MN_ID, HNP), flags=("T",)),
    StepSpec("e", "LMA_HO_Resp", PLMA, BMAG, (MN_ID, HNP), (MN_LL_ID,), (LMA_ADDRESS,)),
    StepSpec(
        "f", "PBU", BMAG, NLMA, (MN_ID, HNP, HANDOFF, ATT, TIMESTAMP), (MN_LL_ID,), flags=("A", "H")
    ),
    StepSpec("g", "Update", NLMA, POLICY_STORE, (MN_ID, LMA_ADDRESS, PLMA_ADDRESS), (HNP,)),
    StepSpec("h", "Update_Ack", POLICY_STORE, NLMA, (MN_ID,), (LMA_ADDRESS,)),
    StepSpec("i", "PBA", NLMA, BMAG, (MN_ID, HNP, HANDOFF, ATT, TIMESTAMP), (MN_LL_ID,)),
)
STEP_BY_LETTER: dict[str, StepSpec] = {s.letter: s for s in STEPS}
STEP_BY_MESSAGE: dict[str, StepSpec] = {s.message: s for s in STEPS}
LETTERS = "".join(s.letter for s in STEPS)
# RFC 5213 lets a PBU and a PBA carry more options than section 7 lists.
PROXY_MESSAGES = frozenset({"PBU", "PBA"})
DATA_STEPS = {"j": "downlink", "k": "uplink"}

# Timers (docs/wire-format.md section 9).
INITIAL_TIMEOUT = 1.0
MAX_RETRANSMISSIONS = 3
# A request is given up after its last retransmission times out: 1 + 2 + 4 + 8 s.
GIVE_UP_AFTER = INITIAL_TIMEOUT * (2 ** (MAX_RETRANSMISSIONS + 1) - 1)
# Addresses whose text form is remembered (cleared when full; any capture works).
MAX_ADDRESS_TEXTS = 65_536
# Retransmission intervals may come this much early (clock jitter) before we warn.
TIMER_TOLERANCE = 0.9

# What each rule checks; the keys are what reports and --json name.
RULES: dict[str, str] = {
    "order": "steps follow the order (b) to (i) of the draft's section 4.2",
    "missing-step": "every step the handover needs appears",
    "unexpected-step": "nothing follows a failure that ends the handover",
    "pairing": "every response answers a request: same peers, Sequence Number and MN",
    "missing-response": "every request is answered",
    "retransmission": (
        "a retransmission keeps the Sequence Number (a PBU takes a larger one), "
        "waits for the doubling timer, at most 3 times"
    ),
    "peer": "each message runs between the entities its step names",
    "wrong-nlma": "LMA_HO_Resp names the NLMA the context went to, and the PBU goes there",
    "mn-id": "every message of a handover carries the same MN Identifier",
    "prefix": "every message carries the MN's home network prefixes, unchanged",
    "link-layer-id": "the MN Link-layer Identifier is the same wherever it appears",
    "mandatory-option": "each message carries the options section 7 marks MUST",
    "unexpected-option": "the draft's six messages carry only options section 7 lists for them",
    "flags": "the flags section 7 requires are set",
    "status": "a refusal propagates: statuses agree along the handover",
    "handoff-indicator": "the PBU's Handoff Indicator is 5 (not changed), and the PBA's matches",
    "timestamp": "the PBA copies the PBU's Timestamp; a retransmitted PBU has a fresh one",
    "proxy-coa": "LMA_HO_Init's MAG IPv6 Address is the bMAG's address",
    "policy-profile": "the Update names the NLMA as LMAA and the PLMA as PLMAA",
    "checksum": "every Mobility Header checksum is valid",
    "malformed": "every Mobility Header decodes",
    "encoding": "options are aligned and padded as RFC 6275 6.2 says",
    "tunnel": (
        "an MN's data uses only its tunnels: Tunnel0 (bMAG<=>PLMA) before the handover, "
        "PLMA=>NLMA from (d), NLMA<=>bMAG from (i)"
    ),
    "foreign-prefix": "a tunnel carries only the prefixes of the MNs it was set up for",
    "lifetime": "LMA_HO_Init carries the remaining lifetime of the binding",
    "capture-end": "the capture covers the whole handover",
}


def _schema_pairs() -> dict[str, str]:
    """Response message name -> the request message name it answers, from the schema."""
    schema = current_schema()
    by_key = {body.key: body for body in schema.messages.values()}
    pairs: dict[str, str] = {}
    for body in schema.messages.values():
        if body.role != "response" or body.answers is None or body.answers not in by_key:
            continue
        request = by_key[body.answers]
        pairs[body.name] = request.name
        if body.proxy_name and request.proxy_name:
            pairs[body.proxy_name] = request.proxy_name
    return pairs


def _answered_steps(pairs: dict[str, str]) -> dict[str, str]:
    """Response step letter -> request step letter ("d" -> "c", "i" -> "f", ...)."""
    out: dict[str, str] = {}
    for spec in STEPS:
        request = pairs.get(spec.message)
        if request in STEP_BY_MESSAGE:
            out[spec.letter] = STEP_BY_MESSAGE[request].letter
    return out


# --- what a report is made of ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class Issue:
    """A violation of a rule, or a warning: which rule, what, where."""

    severity: Severity
    rule: str
    what: str
    frames: tuple[int, ...] = ()
    step: str | None = None
    mn: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"severity": self.severity, "rule": self.rule, "what": self.what}
        out["frames"] = list(self.frames)
        if self.step:
            out["step"] = self.step
        if self.mn is not None:
            out["mn"] = self.mn
        return out


@dataclass(frozen=True, slots=True)
class Sighting:
    """One Mobility Header message, as much of it as the procedure looks at."""

    frame: int
    time: float
    src: Address
    dst: Address
    message: str
    sequence: int | None
    status: Named | None
    flags: FlagBits | None
    lifetime: int | None
    mn_id: str | None
    prefixes: frozenset[Prefix]
    option_keys: frozenset[str]
    link_layer_id: str | None
    lma_address: Address | None
    previous_lma_address: Address | None
    mag_address: Address | None
    handoff_indicator: Named | None
    timestamp: Timestamp | None
    checksum_ok: bool | None

    @classmethod
    def of(cls, frame: int, time: float, src: Address, dst: Address, msg: Message) -> Sighting:
        first: dict[str, Option] = {}
        for opt in msg.options:
            if not opt.is_padding:
                first.setdefault(opt.key, opt)

        def address(key: str) -> Address | None:
            value = field_of(key, "address")
            return value if isinstance(value, Address) else None

        def field_of(key: str, name: str) -> Any:
            opt = first.get(key)
            return None if opt is None else opt.fields.get(name)

        mn_id = msg.mn_identifier
        link_layer = field_of(MN_LL_ID, "identifier")
        return cls(
            frame=frame,
            time=time,
            src=src,
            dst=dst,
            message=msg.name,
            sequence=msg.sequence,
            status=msg.status,
            flags=msg.fields.get("flags"),
            lifetime=msg.fields.get("lifetime"),
            mn_id=None if mn_id is None else printable(str(mn_id)),
            prefixes=frozenset(msg.home_network_prefixes),
            option_keys=frozenset(first),
            link_layer_id=None if link_layer is None else printable(str(link_layer)),
            lma_address=address(LMA_ADDRESS),
            previous_lma_address=address(PLMA_ADDRESS),
            mag_address=address(MAG_ADDRESS),
            handoff_indicator=field_of(HANDOFF, "indicator"),
            timestamp=field_of(TIMESTAMP, "timestamp"),
            checksum_ok=msg.checksum_ok,
        )

    @property
    def succeeded(self) -> bool:
        """A request, or a response whose status is a success."""
        return self.status is None or is_success(int(self.status))

    @property
    def status_name(self) -> str:
        if self.status is None:
            return ""
        return self.status.name or str(int(self.status))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "frame": self.frame,
            "time": round(self.time, 6),
            "message": self.message,
            "src": str(self.src),
            "dst": str(self.dst),
            "sequence": self.sequence,
        }
        if self.status is not None:
            out["status"] = {"value": int(self.status), "name": self.status.name}
        return out


@dataclass(slots=True)
class StepState:
    """A step of one handover: its first message, and the copies sent again after it."""

    spec: StepSpec
    first: Sighting
    copies: list[Sighting] = field(default_factory=list)

    @property
    def sightings(self) -> list[Sighting]:
        return [self.first, *self.copies]

    @property
    def last(self) -> Sighting:
        return self.copies[-1] if self.copies else self.first


@dataclass(frozen=True, slots=True)
class Retransmission:
    """A request sent again (or a response repeated) within a handover."""

    step: str
    message: str
    frames: tuple[int, ...]
    sequences: tuple[int | None, ...]
    intervals: tuple[float, ...]
    answered_by: tuple[int, ...]

    def describe(self) -> str:
        seqs = sorted({s for s in self.sequences if s is not None})
        seq_text = "seq " + "->".join(str(s) for s in seqs) if seqs else "no seq"
        waits = ", ".join(f"{w:.3f} s" for w in self.intervals)
        if not self.answered_by:
            answer = "never answered"
        else:
            plural = "s" if len(self.answered_by) > 1 else ""
            answer = f"answered by frame{plural} {', '.join(map(str, self.answered_by))}"
        return (
            f"({self.step}) {self.message} {seq_text}: sent in frames "
            f"{', '.join(map(str, self.frames))} (waited {waits}); {answer}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "message": self.message,
            "frames": list(self.frames),
            "sequences": list(self.sequences),
            "intervals": [round(w, 6) for w in self.intervals],
            "answered_by": list(self.answered_by),
        }


@dataclass(slots=True)
class DataSegment:
    """Data-plane frames of one MN over one hop ("PLMA=>NLMA", "bMAG->MN"...)."""

    step: str  # "j", "k", or "before" (pre-handover traffic)
    hop: str
    first_frame: int
    last_frame: int
    count: int = 1
    tunnelled: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "hop": self.hop,
            "tunnelled": self.tunnelled,
            "first_frame": self.first_frame,
            "last_frame": self.last_frame,
            "count": self.count,
        }


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a handover ended: completed, failed (at a step), abandoned, incomplete."""

    status: Literal["completed", "failed", "abandoned", "incomplete"]
    step: str | None
    reason: str

    def __str__(self) -> str:
        return self.status if not self.reason else f"{self.status}: {self.reason}"

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "step": self.step, "reason": self.reason}


@dataclass(eq=False, slots=True)
class Handover:
    """One LMA handover of one MN, step by step, with what was found wrong in it."""

    number: int
    mn_id: str | None
    steps: dict[str, StepState] = field(default_factory=dict)
    issues: list[Issue] = field(default_factory=list)
    data: dict[tuple[str, str], DataSegment] = field(default_factory=dict)
    last_activity: float = 0.0
    ended_at: float | None = None  # capture time at which its outcome was settled
    closed: bool = False
    # Filled in when the handover is closed.
    outcome: Outcome | None = None
    roles: dict[str, Address] = field(default_factory=dict)
    prefixes: frozenset[Prefix] = frozenset()
    retransmissions: list[Retransmission] = field(default_factory=list)
    # live_roles() of the steps so far; dropped whenever a step is added.
    _live_roles: dict[str, Address] | None = field(default=None, repr=False)
    # The same, from the address's text to the role (for naming data-plane hops).
    role_by_text: dict[str, str] | None = field(default=None, repr=False)

    def step(self, letter: str) -> Sighting | None:
        state = self.steps.get(letter)
        return None if state is None else state.first

    def live_roles(self) -> dict[str, Address]:
        """Who is bMAG, PLMA, NLMA, policy store, from the steps seen so far."""
        if self._live_roles is None:
            self._live_roles = _infer_roles(self)
        return self._live_roles

    def steps_changed(self) -> None:
        self._live_roles = None
        self.role_by_text = None

    @property
    def latency(self) -> float | None:
        """Seconds from the first LMA_HO_Req (b) to the PBA (i) that answered the PBU."""
        request, answer = self.step("b"), self.step("i")
        if request is None or answer is None:
            return None
        return answer.time - request.time

    @property
    def violations(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "violation"]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "warning"]

    def to_json(self) -> dict[str, Any]:
        latency = self.latency
        return {
            "handover": self.number,
            "mn": self.mn_id,
            "prefixes": sorted(str(p) for p in self.prefixes),
            "roles": {role: str(address) for role, address in self.roles.items()},
            "outcome": None if self.outcome is None else self.outcome.to_json(),
            "latency_s": None if latency is None else round(latency, 6),
            "steps": [
                {
                    "step": letter,
                    **state.first.to_json(),
                    "copies": [c.frame for c in state.copies],
                }
                for letter, state in sorted(self.steps.items())
            ],
            "data": [segment.to_json() for segment in self.data.values()],
            "retransmissions": [r.to_json() for r in self.retransmissions],
            "violations": [i.to_json() for i in self.violations],
            "warnings": [i.to_json() for i in self.warnings],
        }


def printable(text: str) -> str:
    """Text from a packet, safe to print: control characters and undecodable bytes escaped.

    An MN Identifier is whatever octets the sender put there; shown as they
    are, they could corrupt a terminal or fail to encode (lone surrogates).
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escape(c) for c in text)


def _escape(char: str) -> str:
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # an octet that was not UTF-8 (surrogateescape)
        code -= 0xDC00
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _infer_roles(handover: Handover) -> dict[str, Address]:
    """Each role from the message that defines it, else from the next best one."""

    def first(*candidates: tuple[str, str]) -> Address | None:
        for letter, attribute in candidates:
            seen = handover.step(letter)
            if seen is not None:
                value = getattr(seen, attribute)
                if value is not None:
                    return value
        return None

    roles = {
        BMAG: first(("b", "src"), ("f", "src"), ("e", "dst"), ("i", "dst")),
        PLMA: first(("b", "dst"), ("c", "src"), ("e", "src"), ("d", "dst")),
        NLMA: first(
            ("c", "dst"),
            ("d", "src"),
            ("e", "lma_address"),
            ("f", "dst"),
            ("g", "src"),
            ("i", "src"),
        ),
        POLICY_STORE: first(("g", "dst"), ("h", "src")),
    }
    return {role: address for role, address in roles.items() if address is not None}


# --- entities, for reports and ladders ------------------------------------------


@dataclass(slots=True)
class Entity:
    """A node of the capture: keyed by its address (an MN by "mn:" + its MN ID)."""

    key: str
    roles: dict[str, int] = field(default_factory=dict)  # role -> first frame it was seen in

    @property
    def is_mobile(self) -> bool:
        return self.key.startswith("mn:")

    @property
    def address(self) -> str:
        return self.key[3:] if self.is_mobile else self.key

    def ordered_roles(self) -> list[str]:
        return sorted(self.roles, key=lambda r: (ROLE_RANK.get(r, len(ROLE_RANK)), self.roles[r]))

    @property
    def rank(self) -> int:
        roles = self.ordered_roles()
        return ROLE_RANK.get(roles[0], len(ROLE_RANK)) if roles else len(ROLE_RANK)


def mobile_key(mn_id: str) -> str:
    return f"mn:{mn_id}"


class EntityBook:
    """Every entity seen and the roles it played (an LMA can be NLMA once and PLMA later)."""

    def __init__(self) -> None:
        self.entities: dict[str, Entity] = {}

    def note(self, key: str, role: str | None, frame: int) -> Entity:
        entity = self.entities.get(key)
        if entity is None:
            entity = self.entities[key] = Entity(key)
        if role is not None and role not in entity.roles:
            # A specific role makes the generic guess (MAG, LMA) redundant.
            generic = {BMAG: MAG, PLMA: LMA, NLMA: LMA}.get(role)
            if generic is not None:
                entity.roles.pop(generic, None)
            if not (role in (MAG, LMA) and any(r in entity.roles for r in (BMAG, PLMA, NLMA))):
                entity.roles[role] = frame
        return entity

    def get(self, key: str) -> Entity | None:
        return self.entities.get(key)


# --- events, for ladders --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FrameEvent:
    """One arrow of a message sequence chart: a signalling message or a data packet."""

    frame: int
    time: float
    kind: Literal["signalling", "data", "malformed"]
    sender: str
    receiver: str
    label: str
    step: str | None = None
    mn: str | None = None
    handover: int | None = None
    tunnelled: bool = False
    note: str = ""  # short: a status, "again", "bad checksum", "IPv6-in-IPv6"
    detail: str = ""  # long: the addresses inside a data packet


# --- per-MN state ---------------------------------------------------------------

DOWN = "downlink"
UP = "uplink"


@dataclass(slots=True)
class TunnelGrant:
    """Why a tunnel may carry an MN's traffic in one direction, and whether it still may."""

    direction: str
    reason: str
    retired_by: str = ""  # what ended it, once it has ended

    @property
    def active(self) -> bool:
        return not self.retired_by


@dataclass(eq=False, slots=True)
class MobileState:
    """What is known of one MN: prefixes, tunnels, MAC, where it is bound, its handover."""

    mn_id: str
    prefixes: set[Prefix] = field(default_factory=set)
    tunnels: dict[tuple[Address, Address], TunnelGrant] = field(default_factory=dict)
    current: Handover | None = None
    mac: bytes | None = None  # the MN-LL-ID, when it is a MAC address
    # Where the MN's plain (untunnelled) traffic enters and leaves the domain: the LMA
    # anchoring its prefix (downlink in), the LMA serving it (uplink out), its MAG.
    anchor: Address | None = None
    serving_lma: Address | None = None
    serving_mag: Address | None = None
    # Its last handover completed: its data is the draft's (j) and (k) until the next one.
    handed_over: bool = False

    def attach(self, lma: Address, mag: Address) -> None:
        """The MN is bound at ``lma`` through ``mag`` (its first LMA is its anchor)."""
        self.anchor = self.anchor or lma
        self.serving_lma, self.serving_mag = lma, mag


# --- the analyser ---------------------------------------------------------------


@dataclass(slots=True)
class Counters:
    frames: int = 0
    signalling: int = 0
    data: int = 0
    data_unattributed: int = 0
    other: int = 0
    malformed: int = 0
    unknown_messages: int = 0  # Mobility Headers of types the schema does not know


class ProcedureAnalyser:
    """Feed it every frame of a capture in order; it hands back handovers as they close.

    ``feed`` returns the handovers closed by that frame, ``finish`` the rest.
    ``issues`` holds what belongs to no handover (malformed frames, data on
    wrong tunnels after a handover closed, ...), at most ``max_issues`` of
    them (``issues_dropped`` counts the rest). ``on_event`` is called for
    every signalling message and every data packet of a known MN.
    """

    def __init__(
        self,
        *,
        linger: float = 30.0,
        stall_after: float = GIVE_UP_AFTER + 5.0,
        max_issues: int = 10_000,
        on_event: Callable[[FrameEvent], None] | None = None,
    ) -> None:
        self.linger = linger
        self.stall_after = stall_after
        self.max_issues = max_issues
        self.on_event = on_event
        self.counters = Counters()
        self.entities = EntityBook()
        self.issues: list[Issue] = []
        self.issues_dropped = 0
        self.global_counts: dict[str, int] = {"violation": 0, "warning": 0}
        self.latencies = array("d")
        self.outcomes: dict[str, int] = {}
        self.handover_count = 0
        self._pairs = _schema_pairs()
        self._requests = set(self._pairs.values())
        self._answered_step = _answered_steps(self._pairs)
        self._mobiles: dict[str, MobileState] = {}
        self._open: dict[int, Handover] = {}
        self._closed: list[Handover] = []  # judged, not yet handed to the caller
        # Prefix owners by (length, the address's top ``length`` bits): one dict look-up
        # per prefix length in use, no IPv6Network made per packet.
        self._prefix_owner: dict[tuple[int, int], MobileState] = {}
        self._prefix_lengths: set[int] = set()
        self._tunnel_users: dict[tuple[Address, Address], set[str]] = {}
        # Requests of open handovers by (message, src, dst, seq, MN ID), and without the
        # MN ID: a response with a wrong MN ID still finds the request it answers.
        self._pending: dict[tuple[str, Address, Address, int | None, str | None], Handover] = {}
        self._pending_any_mn: dict[tuple[str, Address, Address, int | None], list[Handover]] = {}
        # PMIPv6 requests outside any handover (e.g. the MN's registration with its PLMA).
        self._ordinary: dict[tuple[str, Address, Address, int | None], Sighting] = {}
        self._macs: dict[bytes, str | None] = {}
        self._now = float("-inf")
        self._last_sweep = float("-inf")
        self._texts: dict[int, str] = {}

    # -- driving ------------------------------------------------------------------

    def run(self, records: Iterable[FrameRecord]) -> Iterator[Handover]:
        """Feed every record, then finish; yields each handover as it closes."""
        for record in records:
            yield from self.feed(record)
        yield from self.finish()

    def feed(self, record: FrameRecord) -> list[Handover]:
        self.counters.frames += 1
        self._now = max(self._now, record.frame.time)
        if self._now - self._last_sweep >= 1.0:
            # Before this frame: it must not join a handover whose time is up.
            self._last_sweep = self._now
            self._sweep()
        if record.message is not None and record.payload is not None:
            self.counters.signalling += 1
            if record.message.key is None:
                self.counters.unknown_messages += 1
            self._signalling(record, record.message)
        elif record.error is not None:
            self._malformed(record)
        elif record.payload is not None:
            self._data(record)
        else:
            self.counters.other += 1
        return self._take_closed()

    def finish(self) -> list[Handover]:
        """Close every handover still open: the capture is over."""
        for handover in sorted(self._open.values(), key=lambda h: h.number):
            self._close(handover, capture_end=self._now)
        for request in self._ordinary.values():
            self._ordinary_unanswered(request, capture_end=self._now)
        self._ordinary.clear()
        return self._take_closed()

    def _take_closed(self) -> list[Handover]:
        if not self._closed:
            return []
        closed, self._closed = self._closed, []
        return closed

    # -- reporting helpers ---------------------------------------------------------

    def _global(self, issue: Issue) -> None:
        self.global_counts[issue.severity] += 1
        if len(self.issues) < self.max_issues:
            self.issues.append(issue)
        else:
            self.issues_dropped += 1

    def _text(self, address: Address) -> str:
        """``str(address)``, memoised: formatting IPv6 addresses is the hot spot of a run."""
        value = int(address)  # int keys: no IPv6Address.__eq__ per look-up
        text = self._texts.get(value)
        if text is None:
            if len(self._texts) >= MAX_ADDRESS_TEXTS:
                self._texts.clear()
            text = self._texts[value] = str(address)
        return text

    def _emit(self, event: FrameEvent) -> None:
        if self.on_event is not None:
            self.on_event(event)

    @property
    def open_handovers(self) -> int:
        """Handovers held in memory right now."""
        return len(self._open)

    @property
    def global_violations(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "violation"]

    @property
    def global_warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "warning"]

    def latency_summary(self) -> dict[str, float] | None:
        if not self.latencies:
            return None
        values = sorted(self.latencies)
        return {
            "count": len(values),
            "min": values[0],
            "median": statistics.median(values),
            "mean": statistics.fmean(values),
            "max": values[-1],
        }

    # -- malformed and other frames --------------------------------------------------

    def _malformed(self, record: FrameRecord) -> None:
        assert record.error is not None
        self.counters.malformed += 1
        payload = record.payload
        frame = record.frame.number
        if payload is None:
            self._global(
                Issue("warning", "malformed", f"undecodable IPv6 packet: {record.error}", (frame,))
            )
            return
        self._global(
            Issue("violation", "malformed", f"malformed Mobility Header: {record.error}", (frame,))
        )
        self._emit(
            FrameEvent(
                frame,
                record.frame.time,
                "malformed",
                self.entities.note(self._text(payload.src), None, frame).key,
                self.entities.note(self._text(payload.dst), None, frame).key,
                "malformed MH",
                note=record.error.what,
            )
        )

    # -- signalling ------------------------------------------------------------------

    def _signalling(self, record: FrameRecord, msg: Message) -> None:
        assert record.payload is not None
        frame = record.frame
        seen = Sighting.of(frame.number, frame.time, record.payload.src, record.payload.dst, msg)
        self._learn_macs(record, seen)
        spec = STEP_BY_MESSAGE.get(seen.message)
        handover: Handover | None = None
        if spec is not None:
            handover = self._place(seen, spec)
        elif seen.message in self._requests or seen.message in self._pairs:
            self._ordinary_message(seen)
        if handover is None:
            spec = None
        local: list[Issue] = []
        self._message_findings(msg, seen, spec, local)
        if handover is not None:
            handover.issues.extend(local)
        else:
            for issue in local:
                self._global(issue)
        self._note_entities(seen, spec)
        label = seen.message if spec is None else spec.label
        notes = []
        if seen.sequence is not None:
            label += f" seq={seen.sequence}"
        if seen.status is not None:
            notes.append(seen.status_name)
        if handover is not None and spec is not None:
            state = handover.steps.get(spec.letter)
            if state is not None and state.first is not seen:
                notes.append("again")
        if seen.checksum_ok is False:
            notes.append("bad checksum")
        self._emit(
            FrameEvent(
                seen.frame,
                seen.time,
                "signalling",
                self._text(seen.src),
                self._text(seen.dst),
                label,
                step=None if spec is None else spec.letter,
                mn=seen.mn_id if handover is None else handover.mn_id,
                handover=None if handover is None else handover.number,
                note=", ".join(notes),
            )
        )

    def _learn_macs(self, record: FrameRecord, seen: Sighting) -> None:
        """Ethernet source and destination MACs of untunnelled signalling name their nodes."""
        frame = record.frame
        if frame.linktype != LINKTYPE_ETHERNET or len(frame.data) < 14:
            return
        if record.payload is not None and record.payload.tunnelled:
            return
        for mac, address in ((frame.data[6:12], seen.src), (frame.data[0:6], seen.dst)):
            if mac[0] & 1:  # multicast or broadcast
                continue
            known = self._macs.get(mac, "")
            if known == "":
                self._macs[mac] = self._text(address)
            elif known != self._text(address):
                self._macs[mac] = None  # a router, or a shared MAC: no use for naming

    def _note_entities(self, seen: Sighting, spec: StepSpec | None) -> None:
        if spec is not None:
            self.entities.note(self._text(seen.src), spec.sender, seen.frame)
            self.entities.note(self._text(seen.dst), spec.receiver, seen.frame)
            return
        sender_role = receiver_role = None
        if seen.message == "PBU":
            sender_role, receiver_role = MAG, LMA
        elif seen.message == "PBA":
            sender_role, receiver_role = LMA, MAG
        self.entities.note(self._text(seen.src), sender_role, seen.frame)
        self.entities.note(self._text(seen.dst), receiver_role, seen.frame)

    def _message_findings(
        self, msg: Message, seen: Sighting, spec: StepSpec | None, out: list[Issue]
    ) -> None:
        """What one message shows by itself: checksum, encoding, options, flags."""
        name = seen.message if spec is None else spec.label
        frames = (seen.frame,)
        step = None if spec is None else spec.letter
        if seen.checksum_ok is False:
            out.append(
                Issue(
                    "violation",
                    "checksum",
                    f"{name}: bad Mobility Header checksum 0x{msg.checksum:04x}",
                    frames,
                    step,
                    seen.mn_id,
                )
            )
        for finding in msg.findings:
            if finding.kind != "checksum":
                out.append(
                    Issue("warning", "encoding", f"{name}: {finding}", frames, step, seen.mn_id)
                )
        if spec is None:
            return
        missing = [key for key in spec.must if key not in seen.option_keys]
        if seen.succeeded and seen.status is not None:
            missing += [key for key in spec.must_on_success if key not in seen.option_keys]
        if spec.message not in PROXY_MESSAGES:
            listed = {*spec.must, *spec.may, *spec.must_on_success}
            extra = sorted(seen.option_keys - listed)
            if extra:
                titles = ", ".join(_option_title(key) for key in extra)
                out.append(
                    Issue(
                        "warning",
                        "unexpected-option",
                        f"{name} carries {titles}, which section 7 does not list for it",
                        frames,
                        step,
                        seen.mn_id,
                    )
                )
        if missing:
            titles = ", ".join(_option_title(key) for key in missing)
            out.append(
                Issue(
                    "violation",
                    "mandatory-option",
                    f"{name} lacks {titles}",
                    frames,
                    step,
                    seen.mn_id,
                )
            )
        if spec.flags and seen.flags is not None and seen.succeeded:
            unset = [flag for flag in spec.flags if flag not in seen.flags]
            if unset:
                out.append(
                    Issue(
                        "violation",
                        "flags",
                        f"{name} without flag(s) {', '.join(unset)} set",
                        frames,
                        step,
                        seen.mn_id,
                    )
                )
        indicator = seen.handoff_indicator
        if spec.letter == "f" and indicator is not None and indicator.name != "NOT_CHANGED":
            out.append(
                Issue(
                    "violation",
                    "handoff-indicator",
                    f"{name} has Handoff Indicator {indicator}, "
                    "not 5 (NOT_CHANGED): the NLMA already holds the BCE from (d)",
                    frames,
                    step,
                    seen.mn_id,
                )
            )
        if spec.letter == "c" and seen.lifetime == 0:
            out.append(
                Issue(
                    "warning",
                    "lifetime",
                    f"{name} carries lifetime 0: the binding being transferred has none left",
                    frames,
                    step,
                    seen.mn_id,
                )
            )

    # -- placing a message in a handover ------------------------------------------------

    def _mobile(self, mn_id: str) -> MobileState:
        mobile = self._mobiles.get(mn_id)
        if mobile is None:
            mobile = self._mobiles[mn_id] = MobileState(mn_id)
        return mobile

    def _open_handover(self, mn_id: str | None, seen: Sighting) -> Handover:
        self.handover_count += 1
        handover = Handover(self.handover_count, mn_id, last_activity=seen.time)
        self._open[handover.number] = handover
        if mn_id is not None:
            mobile = self._mobile(mn_id)
            if mobile.current is not None and not mobile.current.closed:
                self._supersede(mobile.current, seen)
            mobile.current = handover
        return handover

    def _supersede(self, previous: Handover, seen: Sighting) -> None:
        if previous.ended_at is None:
            previous.issues.append(
                Issue(
                    "violation",
                    "missing-step",
                    f"a new handover of this MN starts (frame {seen.frame}) before this one ended",
                    (seen.frame,),
                    mn=previous.mn_id,
                )
            )
            previous.ended_at = seen.time
        self._close(previous)

    def _current(self, mn_id: str | None) -> Handover | None:
        if mn_id is None:
            return None
        mobile = self._mobiles.get(mn_id)
        if mobile is None or mobile.current is None or mobile.current.closed:
            return None
        return mobile.current

    def _place(self, seen: Sighting, spec: StepSpec) -> Handover | None:
        """Find (or open) the handover this message belongs to and record it as its step."""
        handover: Handover | None
        if spec.letter in self._answered_step:
            handover = self._place_response(seen, spec)
            if handover is None:
                return None  # a PBA outside any handover: ordinary PMIPv6
        elif spec.letter == "b":
            handover = self._current(seen.mn_id)
            state = None if handover is None else handover.steps.get("b")
            same_request = (
                state is not None
                and state.first.sequence == seen.sequence
                and (state.first.src, state.first.dst) == (seen.src, seen.dst)
            )
            if not same_request:
                handover = self._open_handover(seen.mn_id, seen)
        elif spec.letter == "f":
            handover = self._place_pbu(seen)
            if handover is None:
                self._ordinary_message(seen)
                return None
        else:  # (c) and (g): requests the PLMA and the NLMA make
            handover = self._current(seen.mn_id)
            if handover is None:
                handover = self._adopt(seen, spec)
            if handover is None:
                handover = self._open_handover(seen.mn_id, seen)
        assert handover is not None
        self._record(handover, seen, spec)
        return handover

    def _place_response(self, seen: Sighting, spec: StepSpec) -> Handover | None:
        request_letter = self._answered_step[spec.letter]
        request_name = STEP_BY_LETTER[request_letter].message
        exact = self._pending.get((request_name, seen.dst, seen.src, seen.sequence, seen.mn_id))
        if exact is not None:
            return exact
        handover = self._current(seen.mn_id)
        if handover is not None:
            return handover
        others = self._pending_any_mn.get((request_name, seen.dst, seen.src, seen.sequence), [])
        if len(others) == 1:
            return others[0]
        if spec.letter == "i":
            self._ordinary_message(seen)
            return None
        return self._open_handover(seen.mn_id, seen)

    def _place_pbu(self, seen: Sighting) -> Handover | None:
        """A PBU is step (f) if its MN is in a handover that has not reached (i) yet."""
        handover = self._current(seen.mn_id)
        if handover is None:
            adopted = self._adopt(seen, STEP_BY_LETTER["f"])
            return adopted
        if "i" in handover.steps:
            return None  # a refresh of the new binding
        if "f" not in handover.steps:
            roles = handover.live_roles()
            if handover.step("e") is None and seen.dst == roles.get(PLMA):
                return None  # a refresh with the PLMA, not the handover's PBU
            if handover.ended_at is not None and seen.dst != roles.get(NLMA):
                return None  # after a refusal, a PBU elsewhere is no business of this handover
        return handover

    def _adopt(self, seen: Sighting, spec: StepSpec) -> Handover | None:
        """A request whose MN ID matches no handover: the open one it fits, if exactly one.

        It fits when it lacks this step and the step's sender is the role this
        message comes from; candidates are the handovers of the MNs owning the
        message's prefixes, or, for a message with neither MN ID nor prefix,
        every open handover.
        """
        pool: Iterable[Handover]
        if seen.prefixes:
            owners = (self._prefix_owner.get(_prefix_key(p)) for p in seen.prefixes)
            pool = {o.current for o in owners if o is not None and o.current is not None}
        elif seen.mn_id is None:
            pool = self._open.values()
        else:
            return None
        candidates = [
            handover
            for handover in pool
            if not handover.closed
            and handover.ended_at is None
            and spec.letter not in handover.steps
            and handover.mn_id != seen.mn_id
            and handover.live_roles().get(spec.sender) == seen.src
        ]
        return candidates[0] if len(candidates) == 1 else None

    def _record(self, handover: Handover, seen: Sighting, spec: StepSpec) -> None:
        handover.last_activity = max(handover.last_activity, seen.time)
        if handover.mn_id is None and seen.mn_id is not None:
            handover.mn_id = seen.mn_id
            mobile = self._mobile(seen.mn_id)
            if mobile.current is None or mobile.current.closed:
                mobile.current = handover
        state = handover.steps.get(spec.letter)
        if state is None:
            handover.steps[spec.letter] = StepState(spec, seen)
            handover.steps_changed()
        else:
            state.copies.append(seen)
        if spec.letter not in self._answered_step:
            self._pending[(spec.message, seen.src, seen.dst, seen.sequence, seen.mn_id)] = handover
            same = self._pending_any_mn.setdefault(
                (spec.message, seen.src, seen.dst, seen.sequence), []
            )
            if handover not in same:
                same.append(handover)
        if state is None:
            self._advance(handover, seen, spec)

    def _advance(self, handover: Handover, seen: Sighting, spec: StepSpec) -> None:
        """First sighting of a step: update tunnels and prefixes, settle the outcome."""
        mobile = self._mobile(handover.mn_id) if handover.mn_id is not None else None
        roles = handover.live_roles()
        if mobile is not None and seen.prefixes:
            self._own_prefixes(mobile, seen.prefixes, seen.frame)
        if mobile is not None and seen.link_layer_id:
            mac = _mac_of(seen.link_layer_id)
            if mac is not None:
                mobile.mac = mac
                self._macs.setdefault(mac, mobile_key(mobile.mn_id))
        # Tunnels run between the addresses of the messages that set them up.
        if mobile is not None and spec.letter == "b":
            reason = f"Tunnel0 of the MN's binding with the PLMA (from (b) frame {seen.frame})"
            self._grant(mobile, seen.dst, seen.src, DOWN, reason)
            self._grant(mobile, seen.src, seen.dst, UP, reason)
            mobile.attach(seen.dst, seen.src)
            mobile.handed_over = False
        if mobile is not None and spec.letter == "d" and seen.succeeded:
            reason = f"PLMA-NLMA tunnel from (d) frame {seen.frame}"
            self._grant(mobile, seen.dst, seen.src, DOWN, reason)
            self._grant(mobile, seen.src, seen.dst, UP, reason)
        plma = roles.get(PLMA)
        if mobile is not None and spec.letter == "i":
            nlma, bmag = seen.src, seen.dst
            if seen.succeeded:
                reason = f"Tunnel1 from (i) frame {seen.frame}"
                self._grant(mobile, nlma, bmag, DOWN, reason)
                self._grant(mobile, bmag, nlma, UP, reason)
                mobile.attach(nlma, bmag)
                mobile.handed_over = True
                if plma:
                    moved = f"(i) frame {seen.frame} moved the MN to Tunnel1"
                    self._retire(mobile, plma, bmag, moved)
                    self._retire(mobile, bmag, plma, moved)
            elif plma:
                refused = f"(i) frame {seen.frame} refused the handover"
                self._retire(mobile, plma, nlma, refused)
                self._retire(mobile, nlma, plma, refused)
        ends = (
            spec.letter == "i"
            or (spec.letter == "e" and not seen.succeeded)
            or (spec.letter == "d" and not seen.succeeded and handover.step("e") is not None)
        )
        if ends and handover.ended_at is None:
            handover.ended_at = seen.time

    def _own_prefixes(self, mobile: MobileState, prefixes: Iterable[Prefix], frame: int) -> None:
        for prefix in prefixes:
            if prefix in mobile.prefixes:
                continue
            owner = self._prefix_owner.get(_prefix_key(prefix))
            if owner is not None and owner is not mobile:
                self._global(
                    Issue(
                        "warning",
                        "prefix",
                        f"prefix {prefix} of MN {mobile.mn_id} was MN {owner.mn_id}'s",
                        (frame,),
                        mn=mobile.mn_id,
                    )
                )
                owner.prefixes.discard(prefix)
            mobile.prefixes.add(prefix)
            self._prefix_owner[_prefix_key(prefix)] = mobile
            self._prefix_lengths.add(prefix.prefixlen)

    def _grant(
        self, mobile: MobileState, src: Address, dst: Address, direction: str, reason: str
    ) -> None:
        mobile.tunnels[(src, dst)] = TunnelGrant(direction, reason)
        self._tunnel_users.setdefault((src, dst), set()).add(mobile.mn_id)

    def _retire(self, mobile: MobileState, src: Address, dst: Address, why: str) -> None:
        grant = mobile.tunnels.get((src, dst))
        if grant is not None:
            grant.retired_by = why

    # -- PMIPv6 signalling outside handovers -----------------------------------------------

    def _ordinary_message(self, seen: Sighting) -> None:
        if seen.message in self._requests:
            key = (seen.message, seen.src, seen.dst, seen.sequence)
            self._ordinary.setdefault(key, seen)
            return
        request = self._pairs.get(seen.message)
        if request is None:
            return
        pending = self._ordinary.pop((request, seen.dst, seen.src, seen.sequence), None)
        if pending is None:
            self._global(
                Issue(
                    "warning",
                    "pairing",
                    f"{seen.message} seq={seen.sequence} answers no {request} seen "
                    f"from {seen.dst} to {seen.src}",
                    (seen.frame,),
                    mn=seen.mn_id,
                )
            )
            return
        if seen.message != "PBA" or not seen.succeeded or seen.mn_id is None:
            return
        mobile = self._mobile(seen.mn_id)
        if pending.lifetime == 0:  # a de-registration: the binding and its tunnel are gone
            ended = f"the de-registration acknowledged by PBA frame {seen.frame}"
            self._retire(mobile, seen.src, seen.dst, ended)
            self._retire(mobile, seen.dst, seen.src, ended)
            return
        # A PBA accepting a registration outside any handover: the MN's binding, Tunnel0.
        self._own_prefixes(mobile, seen.prefixes or pending.prefixes, seen.frame)
        reason = f"binding registered by PBA frame {seen.frame}"
        self._grant(mobile, seen.src, seen.dst, DOWN, reason)
        self._grant(mobile, seen.dst, seen.src, UP, reason)
        mobile.attach(seen.src, seen.dst)

    def _ordinary_unanswered(self, seen: Sighting, *, capture_end: float | None = None) -> None:
        what = f"{seen.message} seq={seen.sequence} from {seen.src} to {seen.dst} never answered"
        if capture_end is not None and capture_end - seen.time < INITIAL_TIMEOUT:
            what += " (the capture ends first)"
        self._global(Issue("warning", "missing-response", what, (seen.frame,), mn=seen.mn_id))

    # -- data plane ------------------------------------------------------------------

    def _owner_of(self, address: Address) -> MobileState | None:
        value = int(address)
        for length in self._prefix_lengths:
            owner = self._prefix_owner.get((length, value >> (128 - length)))
            if owner is not None:
                return owner
        return None

    def _data(self, record: FrameRecord) -> None:
        payload = record.payload
        assert payload is not None
        frame = record.frame.number
        inner = payload.hops[-1]
        downlink_mn = self._owner_of(inner.dst) if self._prefix_lengths else None
        uplink_mn = self._owner_of(inner.src) if self._prefix_lengths else None
        mobile = downlink_mn or uplink_mn
        tunnel = (payload.hops[-2].src, payload.hops[-2].dst) if payload.tunnelled else None
        if mobile is None:
            self.counters.data_unattributed += 1
            if tunnel is not None and tunnel in self._tunnel_users:
                users = sorted(self._tunnel_users[tunnel])
                foreign = Issue(
                    "violation",
                    "foreign-prefix",
                    f"tunnel {tunnel[0]} => {tunnel[1]} (of MN {', '.join(users)}) carries "
                    f"{inner.src} -> {inner.dst}, outside the prefixes of its MNs "
                    f"({self._prefix_text(users)})",
                    (frame,),
                    mn=users[0] if len(users) == 1 else None,
                )
                owner = self._current(users[0]) if len(users) == 1 else None
                if owner is not None:
                    owner.issues.append(foreign)
                else:
                    self._global(foreign)
            return
        self.counters.data += 1
        direction = DOWN if downlink_mn is not None else UP
        handover = mobile.current if mobile.current and not mobile.current.closed else None
        roles = self._role_by_text(handover)
        issue = self._check_tunnel(mobile, tunnel, direction, inner.src, inner.dst, frame)
        if issue is not None:
            if handover is not None:
                handover.issues.append(issue)
            else:
                self._global(issue)
        sender, receiver = self._data_ends(record, mobile, direction, tunnel)
        hop = f"{self._role_name(sender, roles)}{'=>' if tunnel else '->'}"
        hop += self._role_name(receiver, roles)
        phase = ("j" if direction == DOWN else "k") if mobile.handed_over else "before"
        if handover is not None:
            segment = handover.data.get((phase, hop))
            if segment is None:
                handover.data[(phase, hop)] = DataSegment(phase, hop, frame, frame, 1, bool(tunnel))
            else:
                segment.count += 1
                segment.last_frame = frame
        self.entities.note(sender, self._entity_role(sender, roles), frame)
        self.entities.note(receiver, self._entity_role(receiver, roles), frame)
        if self.on_event is None:
            return
        label = f"{direction} data"
        if phase in DATA_STEPS:
            label = f"({phase}) {label}"
        inside = f"{self._text(inner.src)} -> {self._text(inner.dst)}"
        self._emit(
            FrameEvent(
                frame,
                record.frame.time,
                "data",
                sender,
                receiver,
                label,
                step=phase if phase in DATA_STEPS else None,
                mn=mobile.mn_id,
                handover=None if handover is None else handover.number,
                tunnelled=tunnel is not None,
                note="IPv6-in-IPv6" if tunnel else "",
                detail=f"{inside} in {sender} -> {receiver}" if tunnel else inside,
            )
        )

    def _prefix_text(self, mn_ids: Iterable[str]) -> str:
        prefixes = sorted(
            {
                str(p)
                for mn_id in mn_ids
                if mn_id in self._mobiles
                for p in self._mobiles[mn_id].prefixes
            }
        )
        return ", ".join(prefixes) or "none known"

    def _check_tunnel(
        self,
        mobile: MobileState,
        tunnel: tuple[Address, Address] | None,
        direction: str,
        inner_src: Address,
        inner_dst: Address,
        frame: int,
    ) -> Issue | None:
        if tunnel is None:
            return None
        grant = mobile.tunnels.get(tunnel)
        if grant is not None and grant.direction == direction and grant.active:
            return None
        what = (
            f"{direction} data of MN {mobile.mn_id} ({inner_src} -> {inner_dst}) "
            f"tunnelled {tunnel[0]} => {tunnel[1]}"
        )
        if grant is None or grant.direction != direction:
            usable = [
                f"{s} => {d}"
                for (s, d), g in mobile.tunnels.items()
                if g.active and g.direction == direction
            ]
            because = (
                "a tunnel of the other direction" if grant is not None else "not one of its tunnels"
            )
            rule = "tunnel"
            if grant is None and tunnel in self._tunnel_users:
                rule = "foreign-prefix"
                because = (
                    f"a tunnel set up for MN {', '.join(sorted(self._tunnel_users[tunnel]))}, "
                    "not for this MN"
                )
            return Issue(
                "violation",
                rule,
                f"{what}: {because} (its {direction} tunnels now: {', '.join(usable) or 'none'})",
                (frame,),
                mn=mobile.mn_id,
            )
        return Issue(
            "warning",
            "tunnel",
            f"{what}: a tunnel out of use since {grant.retired_by} (it came from {grant.reason})",
            (frame,),
            mn=mobile.mn_id,
        )

    def _data_ends(
        self,
        record: FrameRecord,
        mobile: MobileState,
        direction: str,
        tunnel: tuple[Address, Address] | None,
    ) -> tuple[str, str]:
        """Entity keys of the hop a data packet is on.

        A tunnel names its ends. A plain packet is named by its MACs where
        signalling taught them; else the MN's own MAC (its MN-LL-ID) tells the
        access leg (MAG<->MN) from the correspondent's leg (CN<->LMA), whose
        LMA is the anchor downlink and the serving LMA uplink.
        """
        if tunnel is not None:
            return self._text(tunnel[0]), self._text(tunnel[1])
        payload = record.payload
        assert payload is not None
        inner = payload.hops[-1]
        mn = mobile_key(mobile.mn_id)
        correspondent = self._text(inner.src if direction == DOWN else inner.dst)
        frame = record.frame
        src_mac = dst_mac = None
        if frame.linktype == LINKTYPE_ETHERNET and len(frame.data) >= 14:
            src_mac, dst_mac = frame.data[6:12], frame.data[0:6]
        mn_end, far_end = (dst_mac, src_mac) if direction == DOWN else (src_mac, dst_mac)
        access_leg: bool | None = None  # unknown without MACs
        if mobile.mac is not None and mn_end is not None:
            access_leg = mn_end == mobile.mac
        if access_leg is None or access_leg:
            near, far = mn, correspondent
            if access_leg and mobile.serving_mag is not None:
                far = self._text(mobile.serving_mag)
        else:
            lma = mobile.anchor if direction == DOWN else mobile.serving_lma
            near = self._text(lma) if lma is not None else mn
            far = correspondent
        near = (self._macs.get(mn_end) if mn_end is not None else None) or near
        far = (self._macs.get(far_end) if far_end is not None else None) or far
        return (far, near) if direction == DOWN else (near, far)

    def _role_by_text(self, handover: Handover | None) -> dict[str, str]:
        if handover is None:
            return {}
        if handover.role_by_text is None:
            handover.role_by_text = {
                self._text(address): role for role, address in handover.live_roles().items()
            }
        return handover.role_by_text

    def _role_name(self, key: str, roles: dict[str, str]) -> str:
        """The role of an entity key in a handover (``roles``: text -> role), else its own."""
        role = roles.get(key)
        if role is not None:
            return role
        if key.startswith("mn:"):
            return MN
        entity = self.entities.get(key)
        if entity is not None and entity.roles:
            return entity.ordered_roles()[0]
        return CN

    def _entity_role(self, key: str, roles: dict[str, str]) -> str | None:
        name = self._role_name(key, roles)
        entity = self.entities.get(key)
        if name == CN and entity is not None and entity.roles:
            return None
        return name

    # -- closing handovers -------------------------------------------------------------

    def _sweep(self) -> None:
        for handover in list(self._open.values()):
            if handover.ended_at is not None:
                if self._now - handover.ended_at >= self.linger:
                    self._close(handover)
            elif self._now - handover.last_activity >= self.stall_after:
                self._close(handover)
        for key, request in list(self._ordinary.items()):
            if self._now - request.time >= self.stall_after:
                del self._ordinary[key]
                self._ordinary_unanswered(request)

    def _close(self, handover: Handover, *, capture_end: float | None = None) -> None:
        """Judge a handover and queue it for the caller; ``capture_end`` if the capture ran out."""
        if handover.closed:
            return
        handover.closed = True
        self._open.pop(handover.number, None)
        mobile = self._mobiles.get(handover.mn_id) if handover.mn_id is not None else None
        if mobile is not None and mobile.current is handover:
            mobile.current = None  # the caller owns it now; the MN keeps only its tunnels
        for state in handover.steps.values():
            if state.spec.letter in self._answered_step:
                continue
            for seen in state.sightings:
                key = (state.spec.message, seen.src, seen.dst, seen.sequence)
                if self._pending.get((*key, seen.mn_id)) is handover:
                    del self._pending[(*key, seen.mn_id)]
                same = self._pending_any_mn.get(key)
                if same is not None and handover in same:
                    same.remove(handover)
                    if not same:
                        del self._pending_any_mn[key]
        _evaluate(handover, self._answered_step, capture_end=capture_end)
        assert handover.outcome is not None
        status = handover.outcome.status
        self.outcomes[status] = self.outcomes.get(status, 0) + 1
        latency = handover.latency
        if latency is not None:
            self.latencies.append(latency)
        self._closed.append(handover)


def _prefix_key(prefix: Prefix) -> tuple[int, int]:
    return prefix.prefixlen, int(prefix.network_address) >> (128 - prefix.prefixlen)


def _option_title(key: str) -> str:
    try:
        return current_schema().option_by_key(key)[1].title
    except KeyError:
        return key


def _mac_of(identifier: str) -> bytes | None:
    try:
        return mac_bytes(identifier)
    except ValueError:
        return None


def _handover_prefixes(handover: Handover) -> frozenset[Prefix]:
    for letter in LETTERS:
        seen = handover.step(letter)
        if seen is not None and seen.prefixes:
            return seen.prefixes
    return frozenset()


# --- judging a closed handover -----------------------------------------------------


class _Judge:
    """Collects the issues of one handover while its checks run."""

    def __init__(
        self, handover: Handover, answered_step: dict[str, str], capture_end: float | None
    ) -> None:
        self.handover = handover
        self.issues = handover.issues
        self.request_of = answered_step
        self.response_of = {request: response for response, request in answered_step.items()}
        self.capture_end = capture_end

    def settled(self, letter: str, since: float, wait: float = INITIAL_TIMEOUT) -> bool:
        """Is the absence of step ``letter`` a fact, not the capture ending too early?

        It is once a later step was seen, or the capture went on for ``wait``
        seconds after ``since`` (when the step, or a retransmission, was due).
        """
        if self.capture_end is None or self.capture_end - since >= wait:
            return True
        return any(other > letter for other in self.handover.steps)

    def violation(
        self, rule: str, what: str, *sightings: Sighting, step: str | None = None
    ) -> None:
        self._add("violation", rule, what, sightings, step)

    def warning(self, rule: str, what: str, *sightings: Sighting, step: str | None = None) -> None:
        self._add("warning", rule, what, sightings, step)

    def _add(
        self,
        severity: Severity,
        rule: str,
        what: str,
        sightings: tuple[Sighting, ...],
        step: str | None,
    ) -> None:
        frames = tuple(sorted({s.frame for s in sightings}))
        self.issues.append(Issue(severity, rule, what, frames, step, self.handover.mn_id))


def _evaluate(
    handover: Handover, answered_step: dict[str, str], *, capture_end: float | None
) -> None:
    """Every cross-message check of one handover, then its outcome."""
    judge = _Judge(handover, answered_step, capture_end)
    handover.roles = _infer_roles(handover)
    handover.prefixes = _handover_prefixes(handover)
    _check_order(handover, judge)
    _check_identity(handover, judge)
    _check_peers(handover, judge)
    _check_pairs_and_retransmissions(handover, judge)
    _check_statuses(handover, judge)
    _check_contents(handover, judge)
    handover.outcome = _outcome(handover, judge)
    handover.retransmissions.sort(key=lambda r: r.frames)
    handover.issues.sort(key=lambda i: (i.frames[:1] or (0,), i.severity != "violation"))


def _check_order(handover: Handover, judge: _Judge) -> None:
    present = [handover.steps[letter].first for letter in LETTERS if letter in handover.steps]
    letters = [letter for letter in LETTERS if letter in handover.steps]
    for (earlier_letter, earlier), (later_letter, later) in zip(
        zip(letters, present, strict=True),
        zip(letters[1:], present[1:], strict=True),
        strict=False,
    ):
        if later.frame < earlier.frame:
            judge.violation(
                "order",
                f"({later_letter}) {later.message} (frame {later.frame}) comes before "
                f"({earlier_letter}) {earlier.message} (frame {earlier.frame}); "
                f"the draft orders ({earlier_letter}) first",
                later,
                earlier,
                step=later_letter,
            )


def _all_sightings(handover: Handover) -> Iterator[tuple[str, Sighting]]:
    for letter in LETTERS:
        state = handover.steps.get(letter)
        if state is not None:
            for seen in state.sightings:
                yield letter, seen


def _check_identity(handover: Handover, judge: _Judge) -> None:
    """MN ID, prefixes and link-layer ID: the same in every message of the handover."""
    mn_id = handover.mn_id
    reference = next(
        ((letter, s) for letter, s in _all_sightings(handover) if s.mn_id == mn_id), None
    )
    prefix_source = next(
        ((letter, s) for letter, s in _all_sightings(handover) if s.prefixes), None
    )
    link_source = next(
        ((letter, s) for letter, s in _all_sightings(handover) if s.link_layer_id), None
    )
    for letter, seen in _all_sightings(handover):
        label = f"({letter}) {seen.message}"
        if seen.mn_id is not None and seen.mn_id != mn_id and reference is not None:
            judge.violation(
                "mn-id",
                f"{label} carries MN ID {seen.mn_id!r}, the handover's is {mn_id!r} "
                f"(from ({reference[0]}) frame {reference[1].frame})",
                seen,
                reference[1],
                step=letter,
            )
        if (
            prefix_source is not None
            and seen.prefixes
            and seen.prefixes != prefix_source[1].prefixes
        ):
            judge.violation(
                "prefix",
                f"{label} carries prefix(es) {_prefixes_text(seen.prefixes)}, the handover's are "
                f"{_prefixes_text(prefix_source[1].prefixes)} "
                f"(from ({prefix_source[0]}) frame {prefix_source[1].frame})",
                seen,
                prefix_source[1],
                step=letter,
            )
        if (
            link_source is not None
            and seen.link_layer_id
            and seen.link_layer_id != link_source[1].link_layer_id
        ):
            judge.violation(
                "link-layer-id",
                f"{label} carries MN-LL-ID {seen.link_layer_id}, "
                f"({link_source[0]}) frame {link_source[1].frame} has "
                f"{link_source[1].link_layer_id}",
                seen,
                link_source[1],
                step=letter,
            )


def _check_peers(handover: Handover, judge: _Judge) -> None:
    """Requests go between the entities their step names; the PBU to the announced NLMA."""
    roles = handover.roles
    for letter in ("c", "f", "g"):
        state = handover.steps.get(letter)
        if state is None:
            continue
        spec = state.spec
        for seen in state.sightings:
            expected = roles.get(spec.sender)
            if expected is not None and seen.src != expected:
                judge.violation(
                    "peer",
                    f"{spec.label} comes from {seen.src}, not from the {spec.sender} {expected}",
                    seen,
                    step=letter,
                )
    response = handover.step("e")
    init = handover.step("c")
    announced = None if response is None else response.lma_address
    if (
        response is not None
        and announced is not None
        and init is not None
        and announced != init.dst
    ):
        judge.violation(
            "wrong-nlma",
            f"(e) LMA_HO_Resp names NLMA {announced}, but the context went "
            f"to {init.dst} with (c) LMA_HO_Init (frame {init.frame})",
            response,
            init,
            step="e",
        )
    pbu_state = handover.steps.get("f")
    if pbu_state is not None:
        announced = response.lma_address if response is not None else None
        target = announced or roles.get(NLMA)
        source = (
            f"(e) LMA_HO_Resp (frame {response.frame}) named"
            if announced is not None and response is not None
            else "the NLMA is"
        )
        for seen in pbu_state.sightings:
            if target is not None and seen.dst != target:
                judge.violation(
                    "wrong-nlma",
                    f"(f) PBU goes to {seen.dst}, but {source} {target}",
                    seen,
                    *([response] if response is not None else []),
                    step="f",
                )
    update = handover.step("g")
    if update is not None:
        nlma, plma = roles.get(NLMA), roles.get(PLMA)
        if update.lma_address is not None and nlma is not None and update.lma_address != nlma:
            judge.violation(
                "policy-profile",
                f"(g) Update sets LMAA {update.lma_address}, the NLMA is {nlma}",
                update,
                step="g",
            )
        if (
            update.previous_lma_address is not None
            and plma is not None
            and update.previous_lma_address != plma
        ):
            judge.violation(
                "policy-profile",
                f"(g) Update sets PLMAA {update.previous_lma_address}, the PLMA is {plma}",
                update,
                step="g",
            )
    ack = handover.step("h")
    if ack is not None and ack.succeeded and ack.lma_address is not None:
        nlma = roles.get(NLMA)
        if nlma is not None and ack.lma_address != nlma:
            judge.warning(
                "policy-profile",
                f"(h) Update_Ack says the profile's LMAA is {ack.lma_address}, not the NLMA {nlma}",
                ack,
                step="h",
            )
    bmag = roles.get(BMAG)
    proxy_coa = None if init is None else init.mag_address
    if init is not None and proxy_coa is not None and bmag is not None and proxy_coa != bmag:
        judge.violation(
            "proxy-coa",
            f"(c) LMA_HO_Init gives Proxy-CoA {proxy_coa}, the bMAG is {bmag}",
            init,
            step="c",
        )


def _check_pairs_and_retransmissions(handover: Handover, judge: _Judge) -> None:
    for response_letter, request_letter in judge.request_of.items():
        request_state = handover.steps.get(request_letter)
        response_state = handover.steps.get(response_letter)
        answers = []
        if response_state is not None:
            answers = [
                response
                for response in response_state.sightings
                if _pair(request_state, response, judge, response_letter)
            ]
        if request_state is not None:
            _check_request_copies(handover, judge, request_state, answers)
            if response_state is not None and len(response_state.sightings) > 1:
                _check_repeated_responses(judge, request_state, response_state)


def _pair(request_state: StepState | None, response: Sighting, judge: _Judge, letter: str) -> bool:
    label = f"({letter}) {response.message}"
    if request_state is None:
        judge.violation(
            "pairing", f"{label} seq={response.sequence} answers no request", response, step=letter
        )
        return False
    requests = request_state.sightings
    same_seq = [r for r in requests if r.sequence == response.sequence]
    if not same_seq:
        seqs = sorted({r.sequence for r in requests if r.sequence is not None})
        judge.violation(
            "pairing",
            f"{label} seq={response.sequence} matches no {request_state.spec.label} "
            f"(seq {', '.join(map(str, seqs))})",
            response,
            request_state.first,
            step=letter,
        )
        return False
    request = same_seq[0]
    if (response.src, response.dst) != (request.dst, request.src):
        judge.violation(
            "peer",
            f"{label} goes {response.src} -> {response.dst}, but answers "
            f"{request_state.spec.label} {request.src} -> {request.dst} (frame {request.frame})",
            response,
            request,
            step=letter,
        )
        return False
    return True


def _check_request_copies(
    handover: Handover,
    judge: _Judge,
    state: StepState,
    answers: list[Sighting],
) -> None:
    spec = state.spec
    copies = state.sightings
    answer = answers[0] if answers else None
    if len(copies) > 1:
        intervals = tuple(b.time - a.time for a, b in itertools.pairwise(copies))
        handover.retransmissions.append(
            Retransmission(
                spec.letter,
                spec.message,
                tuple(c.frame for c in copies),
                tuple(c.sequence for c in copies),
                intervals,
                tuple(a.frame for a in answers),
            )
        )
        if len(copies) - 1 > MAX_RETRANSMISSIONS:
            judge.violation(
                "retransmission",
                f"{spec.label} sent {len(copies)} times: at most "
                f"{MAX_RETRANSMISSIONS} retransmissions",
                *copies,
                step=spec.letter,
            )
        for number, (previous, again) in enumerate(itertools.pairwise(copies)):
            timeout = INITIAL_TIMEOUT * 2**number
            waited = again.time - previous.time
            if spec.letter == "f":
                _check_pbu_retransmission(judge, previous, again)
            elif again.sequence != previous.sequence:
                judge.violation(
                    "retransmission",
                    f"{spec.label} sent again with seq {again.sequence} (frame {again.frame}) "
                    f"instead of {previous.sequence}: a retransmission keeps its Sequence Number",
                    again,
                    previous,
                    step=spec.letter,
                )
            if waited < timeout * TIMER_TOLERANCE:
                judge.warning(
                    "retransmission",
                    f"{spec.label} sent again after {waited:.3f} s (frame {again.frame}); "
                    f"retransmission {number + 1} is due after {timeout:g} s",
                    again,
                    step=spec.letter,
                )
    response_letter = judge.response_of.get(spec.letter)
    if answer is None and response_letter is not None and response_letter not in handover.steps:
        last = copies[-1]
        due = INITIAL_TIMEOUT * 2 ** (len(copies) - 1)
        if not judge.settled(response_letter, last.time, due):
            judge.warning(
                "capture-end",
                f"the capture ends before {spec.label} (frame {last.frame}) is answered",
                last,
                step=spec.letter,
            )
        else:
            tries = f" after {len(copies) - 1} retransmission(s)" if len(copies) > 1 else ""
            judge.violation(
                "missing-response",
                f"{spec.label} seq={last.sequence} never answered{tries}",
                *copies,
                step=spec.letter,
            )


def _check_pbu_retransmission(judge: _Judge, previous: Sighting, again: Sighting) -> None:
    """RFC 5213 / 6275: a PBU sent again has a larger Sequence Number and a fresh Timestamp."""
    if (
        previous.sequence is not None
        and again.sequence is not None
        and not _seq_after(again.sequence, previous.sequence)
    ):
        judge.violation(
            "retransmission",
            f"(f) PBU sent again with seq {again.sequence} (frame {again.frame}): "
            f"a new PBU needs a Sequence Number larger than {previous.sequence}",
            again,
            previous,
            step="f",
        )
    if (
        previous.timestamp is not None
        and again.timestamp is not None
        and again.timestamp <= previous.timestamp
    ):
        judge.warning(
            "timestamp",
            f"(f) PBU sent again (frame {again.frame}) without a fresh Timestamp",
            again,
            previous,
            step="f",
        )


def _seq_after(a: int, b: int) -> bool:
    """RFC 6275 9.5.1: a is after b modulo 2^16."""
    return a != b and (a - b) % 65536 < 32768


def _check_repeated_responses(judge: _Judge, request: StepState, response: StepState) -> None:
    """A response repeated is fine when a request copy came before it (the answer was lost)."""
    requests = request.sightings
    responses = response.sightings
    for previous, again in itertools.pairwise(responses):
        resent = any(previous.frame < r.frame < again.frame for r in requests)
        label = f"({response.spec.letter}) {again.message}"
        if not resent and again.sequence == previous.sequence:
            judge.warning(
                "retransmission",
                f"{label} repeated (frame {again.frame}) without a request sent again",
                again,
                previous,
                step=response.spec.letter,
            )
        if again.sequence == previous.sequence and int(again.status or 0) != int(
            previous.status or 0
        ):
            judge.warning(
                "status",
                f"{label} answers the same request with status {again.status_name} "
                f"(frame {again.frame}) after {previous.status_name} (frame {previous.frame})",
                again,
                previous,
                step=response.spec.letter,
            )


def _check_statuses(handover: Handover, judge: _Judge) -> None:
    hack, resp, ack, pba = (handover.step(x) for x in "dehi")
    if hack is not None and resp is not None and not hack.succeeded:
        if resp.succeeded:
            judge.violation(
                "status",
                f"(e) LMA_HO_Resp reports {resp.status_name}, but the NLMA refused the "
                f"context with (d) LMA_HAck {hack.status_name} (frame {hack.frame})",
                resp,
                hack,
                step="e",
            )
        elif resp.status is not None and resp.status.name != "NLMA_REJECTED_HANDOVER":
            judge.warning(
                "status",
                f"(e) LMA_HO_Resp reports {resp.status_name} after the NLMA refused; "
                "NLMA_REJECTED_HANDOVER (135) says so",
                resp,
                step="e",
            )
    if hack is not None and resp is not None and hack.succeeded and not resp.succeeded:
        judge.warning(
            "status",
            f"(e) LMA_HO_Resp refuses ({resp.status_name}) although the NLMA accepted at (d)",
            resp,
            hack,
            step="e",
        )
    if ack is not None and pba is not None and not ack.succeeded and pba.succeeded:
        judge.violation(
            "status",
            f"(i) PBA accepts, but the policy store did not update the profile "
            f"((h) Update_Ack {ack.status_name}, frame {ack.frame})",
            pba,
            ack,
            step="i",
        )
    # Nothing may follow a refusal that ends the handover.
    stop = None
    if resp is not None and not resp.succeeded:
        stop = resp
    elif hack is not None and not hack.succeeded:
        stop = hack
    if stop is not None:
        stop_letter = "e" if stop is resp else "d"
        for letter in "fghi":
            seen = handover.step(letter)
            if seen is not None:
                judge.violation(
                    "unexpected-step",
                    f"({letter}) {seen.message} (frame {seen.frame}) after ({stop_letter}) "
                    f"{stop.message} {stop.status_name} ended the handover",
                    seen,
                    stop,
                    step=letter,
                )


def _check_contents(handover: Handover, judge: _Judge) -> None:
    pbu_state, pba = handover.steps.get("f"), handover.step("i")
    if pbu_state is None or pba is None:
        return
    answered = next((p for p in pbu_state.sightings if p.sequence == pba.sequence), pbu_state.last)
    if (
        pba.timestamp is not None
        and answered.timestamp is not None
        and pba.timestamp != answered.timestamp
    ):
        judge.violation(
            "timestamp",
            f"(i) PBA carries Timestamp {pba.timestamp}, not the {answered.timestamp} "
            f"of the PBU it answers (frame {answered.frame})",
            pba,
            answered,
            step="i",
        )
    if (
        pba.handoff_indicator is not None
        and answered.handoff_indicator is not None
        and int(pba.handoff_indicator) != int(answered.handoff_indicator)
    ):
        judge.violation(
            "handoff-indicator",
            f"(i) PBA has Handoff Indicator {pba.handoff_indicator}, "
            f"the PBU (frame {answered.frame}) {answered.handoff_indicator}",
            pba,
            answered,
            step="i",
        )


def _expected_steps(handover: Handover) -> str:
    resp, hack = handover.step("e"), handover.step("d")
    if resp is not None and not resp.succeeded:
        return "bcde" if "c" in handover.steps else "be"
    if hack is not None and not hack.succeeded:
        return "bcde"
    return LETTERS


def _outcome(handover: Handover, judge: _Judge) -> Outcome:
    expected = _expected_steps(handover)
    missing = [
        letter
        for letter in expected
        if letter not in handover.steps
        # A missing response is already "missing-response" on its request.
        and judge.request_of.get(letter) not in handover.steps
    ]
    last_seen = max(handover.steps, key=lambda x: handover.steps[x].first.frame)
    absent = [m for m in missing if judge.settled(m, handover.last_activity)]
    maybe_later = [m for m in missing if m not in absent]
    if absent:
        names = ", ".join(STEP_BY_LETTER[m].label for m in absent)
        judge.violation("missing-step", f"no {names} in this handover")
    if maybe_later:
        names = ", ".join(STEP_BY_LETTER[m].label for m in maybe_later)
        judge.warning("capture-end", f"the capture ends without {names}")
    hack, resp, ack, pba = (handover.step(x) for x in "dehi")
    if hack is not None and not hack.succeeded:
        return Outcome(
            "failed",
            "d",
            f"the NLMA refused the context: (d) LMA_HAck {hack.status_name} (frame {hack.frame})"
            + (f"; (e) LMA_HO_Resp {resp.status_name}" if resp is not None else ""),
        )
    if resp is not None and not resp.succeeded:
        return Outcome(
            "failed",
            "e",
            f"the PLMA refused the handover: (e) LMA_HO_Resp {resp.status_name} "
            f"(frame {resp.frame})",
        )
    if ack is not None and not ack.succeeded:
        tail = f"; (i) PBA {pba.status_name}" if pba is not None else ""
        return Outcome(
            "failed",
            "h",
            f"the policy store did not update the profile: (h) Update_Ack {ack.status_name} "
            f"(frame {ack.frame}){tail}; the bMAG keeps its route via the PLMA",
        )
    if pba is not None and not pba.succeeded:
        return Outcome(
            "failed",
            "i",
            f"the NLMA rejected the PBU: (i) PBA {pba.status_name} (frame {pba.frame})",
        )
    if pba is not None:
        return Outcome("completed", None, "")
    # A request sent again until its sender gave up, without an answer: abandoned.
    for letter, state in sorted(handover.steps.items()):
        response = judge.response_of.get(letter)
        if response is None or response in handover.steps:
            continue
        tries = len(state.sightings) - 1
        if tries and judge.settled(response, state.last.time, INITIAL_TIMEOUT * 2**tries):
            return Outcome(
                "abandoned",
                letter,
                f"{state.spec.label} never answered after {tries} retransmission(s)",
            )
    return Outcome("incomplete", last_seen, f"nothing after {STEP_BY_LETTER[last_seen].label}")


def _prefixes_text(prefixes: Iterable[Prefix]) -> str:
    return ", ".join(sorted(str(p) for p in prefixes)) or "none"


# --- one call for a whole capture ------------------------------------------------------


@dataclass(slots=True)
class CheckResult:
    """Every handover of a capture and the analyser's totals (for tests and scripts)."""

    handovers: list[Handover]
    analyser: ProcedureAnalyser

    @property
    def violations(self) -> list[Issue]:
        return [i for h in self.handovers for i in h.violations] + self.analyser.global_violations

    @property
    def warnings(self) -> list[Issue]:
        return [i for h in self.handovers for i in h.warnings] + self.analyser.global_warnings


def check_records(records: Iterable[FrameRecord], **options: Any) -> CheckResult:
    """Check every frame (FrameRecords in capture order); keeps every handover in memory."""
    analyser = ProcedureAnalyser(**options)
    return CheckResult(list(analyser.run(records)), analyser)
