"""What a check hands out: handovers with their steps, issues and verdict, entities, events.

A :class:`Handover` is one LMA handover of one MN as the analyser
(:mod:`lmaho_check.analyser`) pieced it together: each step's
:class:`Sighting` (the message as far as the procedure looks at it) and its
copies, the data plane seen during it, the :class:`Issue` s found and, once
it is closed, its :class:`Verdict`. :class:`Entity` and :class:`FrameEvent`
are what a ladder draws.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any, Literal

from lmaho_procedure import BMAG, NLMA, PLMA, POLICY_STORE, Role, Rule, Step
from lmaho_wire.codec import Message, Option, current_schema, hnp_network
from lmaho_wire.fields import OptionBody
from lmaho_wire.options import PADN, frozen_maker
from lmaho_wire.schema import is_success
from lmaho_wire.values import FlagBits, Named, Timestamp

from .contents import (
    HANDOFF,
    HNP,
    LMA_ADDRESS,
    MAG_ADDRESS,
    MN_ID,
    MN_LL_ID,
    PLMA_ADDRESS,
    TIMESTAMP,
)

Address = ipaddress.IPv6Address
# An LMA Address option names its LMA by IPv6 (Option-Code 1) or IPv4 (2) address.
LmaAddress = ipaddress.IPv6Address | ipaddress.IPv4Address
Prefix = ipaddress.IPv6Network
Severity = Literal["violation", "warning"]

# Addresses whose text form is remembered (cleared when full; any capture works).
MAX_ADDRESS_TEXTS = 65_536
_address_texts: dict[int, str] = {}


def address_text(address: Address) -> str:
    """``str(address)``, memoised: formatting IPv6 addresses is a hot spot of a check."""
    value = int(address)  # int keys: no IPv6Address.__hash__ per look-up
    text = _address_texts.get(value)
    if text is None:
        if len(_address_texts) >= MAX_ADDRESS_TEXTS:
            _address_texts.clear()
        text = _address_texts[value] = str(address)
    return text


def prefix_text(prefix: Prefix) -> str:
    """``str(prefix)``, its address formatted by :func:`address_text`."""
    return f"{address_text(prefix.network_address)}/{prefix.prefixlen}"


# A ladder's columns, left to right.
ROLE_RANK = {role: i for i, role in enumerate(Role)}


@dataclass(frozen=True, slots=True)
class Issue:
    """A violation of a rule, or a warning: which rule, what, where."""

    severity: Severity
    rule: Rule
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
    lma_address: LmaAddress | None
    previous_lma_address: LmaAddress | None
    mag_address: Address | None
    handoff_indicator: Named | None
    timestamp: Timestamp | None
    checksum_ok: bool | None
    # Options the schema allows once that came again: (title, first value, next value).
    repeated: tuple[tuple[str, str, str], ...] = ()
    # Octets of the message the capture did not keep: options past them are unknown.
    uncaptured: int = 0

    @classmethod
    def of(cls, frame: int, time: float, src: Address, dst: Address, msg: Message) -> Sighting:
        # One pass over the options: the first of each kind, the prefixes, repeats.
        first: dict[str, Option] = {}
        prefixes: list[Option] = []
        repeated: list[tuple[str, str, str]] = []
        for opt in msg.options:
            if opt.type <= PADN:  # Pad1, PadN
                continue
            key = opt.key
            earlier = first.get(key)
            if earlier is None:
                first[key] = opt
            else:  # rare: look the declaration up only now
                body = (msg.codec.schema if msg.codec else current_schema()).options.get(opt.type)
                # An option the schema does not know, it cannot say is once only.
                if body is not None and not body.repeatable:
                    repeated.append(
                        (opt.title, _option_text(earlier, body), _option_text(opt, body))
                    )
            if key == HNP:
                prefixes.append(opt)

        def field_of(key: str, name: str) -> Any:
            opt = first.get(key)
            return None if opt is None else opt.fields.get(name)

        mn_id = field_of(MN_ID, "identifier")
        link_layer = field_of(MN_LL_ID, "identifier")
        fields = msg.fields
        return _make_sighting(
            frame,
            time,
            src,
            dst,
            msg.name,
            fields.get("sequence"),
            fields.get("status"),
            fields.get("flags"),
            fields.get("lifetime"),
            None if mn_id is None else printable(str(mn_id)),
            _prefix_set(prefixes),
            frozenset(first),
            None if link_layer is None else printable(str(link_layer)),
            _lma_address(field_of(LMA_ADDRESS, "address")),
            _lma_address(field_of(PLMA_ADDRESS, "address")),
            _ipv6(field_of(MAG_ADDRESS, "address")),
            field_of(HANDOFF, "indicator"),
            field_of(TIMESTAMP, "timestamp"),
            msg.checksum_ok,
            tuple(repeated),
            msg.uncaptured,
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
            "src": address_text(self.src),
            "dst": address_text(self.dst),
            "sequence": self.sequence,
        }
        if self.status is not None:
            out["status"] = {"value": int(self.status), "name": self.status.name}
        return out


# Made for every signalling message: the fast constructor (see frozen_maker).
_SightingFields, _make_sighting = frozen_maker(Sighting)


def _option_text(opt: Option, body: OptionBody) -> str:
    """An option's value as a report shows it: its fields but the reserved ones."""
    return printable(" ".join(str(v) for k, v in opt.fields.items() if k not in body.reserved))


def _ipv6(address: Any) -> Address | None:
    return address if isinstance(address, Address) else None


def _lma_address(address: Any) -> LmaAddress | None:
    return address if isinstance(address, LmaAddress) else None


# Prefix sets by the octets of their options (a pure function of them). Cleared when
# full: the messages of one handover come close together, and memory must not grow
# with the MNs of a capture.
MAX_PREFIX_SETS = 1_024
_prefix_sets: dict[bytes | tuple[bytes, ...], frozenset[Prefix]] = {}


def _prefix_set(options: list[Option]) -> frozenset[Prefix]:
    """The prefixes of Home Network Prefix options (``Message.home_network_prefixes``)."""
    if not options:
        return _NO_PREFIXES
    # One option (the common case) is keyed by its octets alone.
    key = options[0].data if len(options) == 1 else tuple(opt.data for opt in options)
    prefixes = _prefix_sets.get(key)
    if prefixes is None:
        if len(_prefix_sets) >= MAX_PREFIX_SETS:
            _prefix_sets.clear()
        prefixes = _prefix_sets[key] = frozenset(
            hnp_network(o.fields["prefix"], o.fields["prefix_length"])
            for o in options
            if o.fields["prefix_length"] <= 128
        )
    return prefixes


_NO_PREFIXES: frozenset[Prefix] = frozenset()


@dataclass(slots=True)
class StepState:
    """A step of one handover: its first message, and the copies sent again after it."""

    spec: Step
    first: Sighting
    copies: list[Sighting] = field(default_factory=list)

    @property
    def sightings(self) -> list[Sighting]:
        return [self.first, *self.copies]

    @property
    def last(self) -> Sighting:
        return self.copies[-1] if self.copies else self.first


@dataclass(frozen=True, slots=True)
class ResentRequest:
    """A request of a handover sent more than once: its copies, their waits, what answered."""

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
class Verdict:
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
    outcome: Verdict | None = None
    roles: dict[Role, Address] = field(default_factory=dict)
    prefixes: frozenset[Prefix] = frozenset()
    retransmissions: list[ResentRequest] = field(default_factory=list)
    # live_roles() of the steps so far; dropped whenever a step is added.
    _live_roles: dict[Role, Address] | None = field(default=None, repr=False)
    # The same, from the address's text to the role (for naming data-plane hops).
    role_by_text: dict[str, Role] | None = field(default=None, repr=False)

    def step(self, letter: str) -> Sighting | None:
        state = self.steps.get(letter)
        return None if state is None else state.first

    def live_roles(self) -> dict[Role, Address]:
        """Who is bMAG, PLMA, NLMA, policy store, from the steps seen so far."""
        if self._live_roles is None:
            self._live_roles = infer_roles(self)
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
            "prefixes": sorted(prefix_text(p) for p in self.prefixes),
            "roles": {role: address_text(address) for role, address in self.roles.items()},
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


def infer_roles(handover: Handover) -> dict[Role, Address]:
    """Each role from the message that defines it, else from the next best one."""

    def first(*candidates: tuple[str, str]) -> Address | None:
        for letter, attribute in candidates:
            seen = handover.step(letter)
            if seen is not None:
                value = getattr(seen, attribute)
                if isinstance(value, Address):  # an IPv4 LMA Address names no IPv6 node
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


# --- entities and events, for ladders ----------------------------------------------


@dataclass(slots=True)
class Entity:
    """A node of the capture: keyed by its address (an MN by "mn:" + its MN ID)."""

    key: str
    roles: dict[Role, int] = field(default_factory=dict)  # role -> first frame it was seen in

    @property
    def is_mobile(self) -> bool:
        return self.key.startswith("mn:")

    @property
    def address(self) -> str:
        return self.key[3:] if self.is_mobile else self.key

    def ordered_roles(self) -> list[Role]:
        return sorted(self.roles, key=lambda r: (ROLE_RANK.get(r, len(ROLE_RANK)), self.roles[r]))

    @property
    def rank(self) -> int:
        roles = self.ordered_roles()
        return ROLE_RANK.get(roles[0], len(ROLE_RANK)) if roles else len(ROLE_RANK)


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
