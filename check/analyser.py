"""The frame-by-frame analyser: signalling grouped into handovers, data held to tunnels.

:class:`ProcedureAnalyser` is fed every frame of a capture, in order, and

* groups the signalling into handovers, one at a time per MN (by MN
  Identifier, or when that is wrong by the request a response answers or by
  the entities a step runs between);
* pairs requests and responses as the schema declares them
  (``MessageBody.role`` / ``.answers``): same peers, Sequence Number and MN;
* follows each MN's tunnels (:mod:`lmaho_check.tunnels`) and holds the data
  plane to them;
* when a handover is over, has it judged (:mod:`lmaho_check.judges`) and
  hands it to the caller.

Memory is per open handover and per MN, never per frame: a handover is
closed (and handed to the caller) once it ended and ``linger`` seconds of
capture time have passed, when it stalls, when the MN starts another one,
or at the end of the capture.
"""

from __future__ import annotations

import statistics
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from lmaho_procedure import (
    BMAG,
    CN,
    DATA_STEPS,
    GIVE_UP_AFTER,
    INITIAL_TIMEOUT,
    LMA,
    MAG,
    MN,
    NLMA,
    PLMA,
    SIGNALLING_STEPS,
    STEP_BY_LETTER,
    STEP_BY_MESSAGE,
    Direction,
    Role,
    Rule,
    Step,
)
from lmaho_wire.capture import LINKTYPE_ETHERNET
from lmaho_wire.codec import Message
from lmaho_wire.dissect import FrameRecord
from lmaho_wire.errors import IncompleteDatagram, SnapshotCut
from lmaho_wire.packet import MOBILITY_PROTOCOLS, IPv6Payload, mac_bytes
from lmaho_wire.registry import current_schema

from .freshness import FreshnessBook
from .judges import judge_handover, message_findings
from .report import (
    Address,
    DataSegment,
    Entity,
    FrameEvent,
    Handover,
    Issue,
    Sighting,
    StepState,
    address_text,
)
from .tunnels import DOWN, UP, MobileState, Tunnel, TunnelTracker


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
    for spec in SIGNALLING_STEPS:
        request = pairs.get(spec.message)
        if request in STEP_BY_MESSAGE:
            out[spec.letter] = STEP_BY_MESSAGE[request].letter
    return out


# --- entities, for reports and ladders ------------------------------------------


def mobile_key(mn_id: str) -> str:
    return f"mn:{mn_id}"


# The roles a handover tells apart, and the PMIPv6 role each is a case of.
GENERIC_ROLE = {BMAG: MAG, PLMA: LMA, NLMA: LMA}
GENERIC_ROLES = frozenset(GENERIC_ROLE.values())


class EntityBook:
    """Every entity seen and the roles it played (an LMA can be NLMA once and PLMA later)."""

    def __init__(self) -> None:
        self.entities: dict[str, Entity] = {}
        # Each entity's first role (Entity.ordered_roles()[0]), kept until its roles change.
        self._primary: dict[str, Role] = {}

    def note(self, key: str, role: Role | None, frame: int) -> Entity:
        entity = self.entities.get(key)
        if entity is None:
            entity = self.entities[key] = Entity(key)
        if role is not None and role not in entity.roles:
            # A specific role makes the generic guess (MAG, LMA) redundant.
            generic = GENERIC_ROLE.get(role)
            if generic is not None:
                entity.roles.pop(generic, None)
            if not (role in GENERIC_ROLES and any(r in entity.roles for r in GENERIC_ROLE)):
                entity.roles[role] = frame
            self._primary.pop(key, None)
        return entity

    def get(self, key: str) -> Entity | None:
        return self.entities.get(key)

    def primary_role(self, key: str) -> Role | None:
        """The first of the entity's roles in ladder order; None if it has none (or is unknown)."""
        role = self._primary.get(key)
        if role is None:
            entity = self.entities.get(key)
            if entity is None or not entity.roles:
                return None
            role = self._primary[key] = entity.ordered_roles()[0]
        return role


# --- the analyser ---------------------------------------------------------------


@dataclass(slots=True)
class Counters:
    frames: int = 0
    signalling: int = 0
    data: int = 0
    data_unattributed: int = 0
    other: int = 0
    malformed: int = 0
    # Frames the capture cut (its snapshot length) before the part that could be checked
    cut: int = 0
    # Signalling seen again further along its path (a capture on a router, tcpdump -i any)
    forwarded: int = 0
    # Mobility Headers of types the schema does not name (a BRR or a HoTI is named: IANA's)
    unknown_messages: int = 0


# A copy of a message, hop limit lower, within this long of it is the same packet seen
# again further along its path, not a retransmission (none comes sooner than this).
FORWARDED_WITHIN = INITIAL_TIMEOUT / 2
# Messages remembered for that (a bound for captures with more in so short a time).
MAX_RECENT_MESSAGES = 65_536

# Packets cut too early to tell what they carry, named in the one warning about them.
MAX_CUT_FRAMES_NAMED = 10

# Data flows whose verdict is remembered (cleared when full: few are live at a time, and
# memory must not grow with the MNs of a capture).
MAX_FLOWS = 1_024


@dataclass(slots=True)
class _Flow:
    """What a data packet came to, for the next packets with the same addresses and MACs.

    It holds while nothing it was reached from changes: the MN that owns the
    addresses (and which way they go), the MN's version (tunnels, attachment,
    MAC), its open handover and that handover's steps (the roles that name a
    hop), the first roles of the hop's ends, and the names of the MACs.
    """

    mobile: MobileState
    version: int
    direction: Direction
    ends: tuple[str, str]
    end_roles: tuple[Role | None, Role | None]
    segment: DataSegment | None  # where the packet was counted
    handover: int | None = None  # its number: a flow must not keep a closed handover
    steps: int = 0
    mac_names: tuple[str | None, str | None] | None = None


def _flow_key(record: FrameRecord) -> bytes:
    """The octets a data packet's verdict depends on: MACs, inner and tunnel addresses.

    Keys of the four kinds (with or without MACs, with or without a tunnel)
    differ in length, so never collide.
    """
    frame = record.frame
    octets = frame.data
    assert record.payload is not None
    hops = record.payload.hops
    inner = hops[-1].offset
    key = octets[inner + 8 : inner + 40]
    if len(hops) > 1:
        outer = hops[-2].offset
        key += octets[outer + 8 : outer + 40]
    if frame.linktype == LINKTYPE_ETHERNET:
        key = octets[0:12] + key
    return key


class ProcedureAnalyser:
    """Feed it every frame of a capture in order; it hands back handovers as they close.

    ``feed`` returns the handovers closed by that frame, ``finish`` the rest.
    ``issues`` holds what belongs to no handover (malformed frames, data on
    wrong tunnels after a handover closed, ...), at most ``max_issues`` of
    them (``issues_dropped`` counts the rest). ``on_event`` is called for
    every signalling message and every data packet of a known MN. Findings of
    the rules in ``ignore`` are dropped, handovers' and global ones alike
    (``ignored`` counts them).
    """

    def __init__(
        self,
        *,
        linger: float = 30.0,
        stall_after: float = GIVE_UP_AFTER + 5.0,
        max_issues: int = 10_000,
        on_event: Callable[[FrameEvent], None] | None = None,
        ignore: Iterable[Rule] = (),
    ) -> None:
        self.linger = linger
        self.stall_after = stall_after
        self.max_issues = max_issues
        self.on_event = on_event
        # Rules whose findings are dropped (lmaho check --ignore), and how many were.
        self.ignore = frozenset(ignore)
        self.ignored = 0
        self.counters = Counters()
        self.entities = EntityBook()
        self.issues: list[Issue] = []
        self.issues_dropped = 0
        self.global_counts: dict[str, int] = {"violation": 0, "warning": 0}
        self.latencies = array("d")
        self.outcomes: dict[str, int] = {}
        self.handover_count = 0
        self._named_types = frozenset(current_schema().mh_type_names)
        self._pairs = _schema_pairs()
        self._requests = set(self._pairs.values())
        self._answered_step = _answered_steps(self._pairs)
        self.tunnels = TunnelTracker()
        self._freshness = FreshnessBook()
        self._open: dict[int, Handover] = {}
        self._closed: list[Handover] = []  # judged, not yet handed to the caller
        # Requests of open handovers by (message, src, dst, seq, MN ID), and without the
        # MN ID: a response with a wrong MN ID still finds the request it answers.
        self._pending: dict[tuple[str, Address, Address, int | None, str | None], Handover] = {}
        self._pending_any_mn: dict[tuple[str, Address, Address, int | None], list[Handover]] = {}
        # PMIPv6 requests outside any handover (e.g. the MN's registration with its PLMA).
        self._ordinary: dict[tuple[str, Address, Address, int | None], Sighting] = {}
        self._macs: dict[bytes, str | None] = {}
        self._flows: dict[bytes, _Flow] = {}
        # IPv6 packets cut before what they carry could be told: how many, and the first.
        self._cut_unseen = 0
        self._cut_headers: list[int] = []
        # Recent messages by addresses and octets: (time, outer hop limit) of the last copy.
        self._recent: dict[bytes, tuple[float, int]] = {}
        self._now = float("-inf")
        self._last_sweep = float("-inf")

    # -- driving ------------------------------------------------------------------

    def run(self, records: Iterable[FrameRecord]) -> Iterator[Handover]:
        """Feed every record, then finish; yields each handover as it closes."""
        for record in records:
            yield from self.feed(record)
        yield from self.finish()

    def feed(self, record: FrameRecord) -> list[Handover]:
        error = record.error
        if error is not None and isinstance(error, IncompleteDatagram):
            # Not a frame of its own: its fragments were counted as they came.
            self._global(Issue("warning", Rule.MALFORMED, error.what, record.fragments))
            return self._take_closed()
        counters = self.counters
        counters.frames += 1
        time = record.frame.time
        if time > self._now:
            self._now = time
        if self._now - self._last_sweep >= 1.0:
            # Before this frame: it must not join a handover whose time is up.
            self._last_sweep = self._now
            self._sweep()
        message = record.message
        if message is not None and record.payload is not None:
            if self._seen_further_along(record, record.payload):
                counters.forwarded += 1
                return self._take_closed()
            counters.signalling += 1
            if message.key is None and message.mh_type not in self._named_types:
                counters.unknown_messages += 1
            self._signalling(record, message)
        elif error is not None:
            self._malformed(record)
        elif record.payload is None:
            self.counters.other += 1
        elif record.is_fragment:
            self.counters.data_unattributed += 1  # a piece of a later record
        else:
            self._data(record)
        return self._take_closed()

    def finish(self) -> list[Handover]:
        """Close every handover still open: the capture is over."""
        if self._cut_headers:
            cut = self._cut_unseen
            named = (
                f" (the first {len(self._cut_headers)} named)" if cut > MAX_CUT_FRAMES_NAMED else ""
            )
            self._global(
                Issue(
                    "warning",
                    Rule.SNAPSHOT_LENGTH,
                    f"{cut} IPv6 packet(s) cut by the capture's snapshot length too early to "
                    f"tell what they carry, not checked{named}",
                    tuple(self._cut_headers),
                )
            )
            self._cut_headers, self._cut_unseen = [], 0
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
        if issue.rule in self.ignore:
            self.ignored += 1
            return
        self.global_counts[issue.severity] += 1
        if len(self.issues) < self.max_issues:
            self.issues.append(issue)
        else:
            self.issues_dropped += 1

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
        payload = record.payload
        frame = record.frame.number
        if isinstance(record.error, SnapshotCut):
            self._snapshot_cut(record, record.error)
            return
        self.counters.malformed += 1
        if payload is None:
            self._global(
                Issue(
                    "warning", Rule.MALFORMED, f"undecodable IPv6 packet: {record.error}", (frame,)
                )
            )
            return
        self._global(
            Issue(
                "violation", Rule.MALFORMED, f"malformed Mobility Header: {record.error}", (frame,)
            )
        )
        self._emit_undecoded(record, payload, "malformed MH", record.error.what)

    def _snapshot_cut(self, record: FrameRecord, cut: SnapshotCut) -> None:
        """A frame the capture cut before what can be checked: the capture's limit, not a fault.

        A Mobility Header is reported frame by frame; packets cut too early to tell what
        they carry (data or signalling) once, at the end, with the first few.
        """
        self.counters.cut += 1
        frame = record.frame.number
        payload = record.payload
        if payload is None or payload.proto not in MOBILITY_PROTOCOLS:
            self._cut_unseen += 1
            if len(self._cut_headers) < MAX_CUT_FRAMES_NAMED:
                self._cut_headers.append(frame)
            return
        self._global(
            Issue(
                "warning",
                Rule.SNAPSHOT_LENGTH,
                f"Mobility Header not checked: {cut.what}",
                (frame,),
            )
        )
        self._emit_undecoded(record, payload, "cut MH", cut.what)

    def _emit_undecoded(
        self, record: FrameRecord, payload: IPv6Payload, label: str, note: str
    ) -> None:
        """The event of a Mobility Header that could not be decoded (for charts)."""
        frame = record.frame.number
        self._emit(
            FrameEvent(
                frame,
                record.frame.time,
                "malformed",
                self.entities.note(address_text(payload.src), None, frame).key,
                self.entities.note(address_text(payload.dst), None, frame).key,
                label,
                note=note,
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
        local = message_findings(msg, seen, spec)
        if seen.message in self._requests:
            stale = self._freshness.check(seen)
            if stale is not None:
                local.append(stale if spec is None else replace(stale, step=spec.letter))
        if handover is not None:
            handover.issues.extend(local)
        else:
            for issue in local:
                self._global(issue)
        self._note_entities(seen, spec)
        if self.on_event is None:
            return  # the event below is for charts only
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
                address_text(seen.src),
                address_text(seen.dst),
                label,
                step=None if spec is None else spec.letter,
                mn=seen.mn_id if handover is None else handover.mn_id,
                handover=None if handover is None else handover.number,
                note=", ".join(notes),
            )
        )

    def _seen_further_along(self, record: FrameRecord, payload: IPv6Payload) -> bool:
        """Is this message one seen just before, from and to the same addresses, octet for
        octet, with a lower hop limit: the same packet captured again after a router
        forwarded it? A retransmission is sent anew by its sender (the same hop limit
        where it is captured) and later (the retransmission timer)."""
        octets = record.frame.data
        inner = payload.hops[-1].offset
        key = octets[inner + 8 : inner + 40] + octets[payload.offset : payload.end]
        time, hop_limit = record.frame.time, payload.hops[0].hop_limit
        earlier = self._recent.get(key)
        if earlier is not None and time - earlier[0] <= FORWARDED_WITHIN and hop_limit < earlier[1]:
            self._recent[key] = (time, hop_limit)  # and a copy one more hop on, after this one
            return True
        if len(self._recent) >= MAX_RECENT_MESSAGES:
            self._recent.clear()
        self._recent[key] = (time, hop_limit)
        return False

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
                self._macs[mac] = address_text(address)
            elif known != address_text(address):
                self._macs[mac] = None  # a router, or a shared MAC: no use for naming

    def _note_entities(self, seen: Sighting, spec: Step | None) -> None:
        if spec is not None:
            self.entities.note(address_text(seen.src), spec.sender, seen.frame)
            self.entities.note(address_text(seen.dst), spec.receiver, seen.frame)
            return
        sender_role = receiver_role = None
        if seen.message == "PBU":
            sender_role, receiver_role = MAG, LMA
        elif seen.message == "PBA":
            sender_role, receiver_role = LMA, MAG
        self.entities.note(address_text(seen.src), sender_role, seen.frame)
        self.entities.note(address_text(seen.dst), receiver_role, seen.frame)

    # -- placing a message in a handover ------------------------------------------------

    def _open_handover(self, mn_id: str | None, seen: Sighting) -> Handover:
        self.handover_count += 1
        handover = Handover(self.handover_count, mn_id, last_activity=seen.time)
        self._open[handover.number] = handover
        if mn_id is not None:
            mobile = self.tunnels.mobile(mn_id)
            if mobile.current is not None and not mobile.current.closed:
                self._supersede(mobile.current, seen)
            mobile.current = handover
        return handover

    def _supersede(self, previous: Handover, seen: Sighting) -> None:
        if previous.ended_at is None:
            previous.issues.append(
                Issue(
                    "violation",
                    Rule.MISSING_STEP,
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
        mobile = self.tunnels.mobiles.get(mn_id)
        if mobile is None or mobile.current is None or mobile.current.closed:
            return None
        return mobile.current

    def _place(self, seen: Sighting, spec: Step) -> Handover | None:
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
        elif spec.letter == "g" and self._restores_profile(seen):
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

    def _place_response(self, seen: Sighting, spec: Step) -> Handover | None:
        request_letter = self._answered_step[spec.letter]
        request_name = STEP_BY_LETTER[request_letter].message
        exact = self._pending.get((request_name, seen.dst, seen.src, seen.sequence, seen.mn_id))
        if exact is not None:
            return exact
        if (request_name, seen.dst, seen.src, seen.sequence) in self._ordinary:
            # It answers a request outside any handover (a PBA to a registration,
            # e.g. the re-registration with the PLMA after a failed (i)).
            self._ordinary_message(seen)
            return None
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

    def _restores_profile(self, seen: Sighting) -> bool:
        """An Update from the PLMA after its MN's handover ended.

        The PLMA naming itself again once the bMAG re-registered the MN there
        (docs/wire-format.md 8): an exchange outside the handover, like the
        re-registration's PBU/PBA. From anyone else it stays the handover's (g).
        """
        handover = self._current(seen.mn_id)
        return (
            handover is not None
            and handover.ended_at is not None
            and seen.src == handover.live_roles().get(PLMA)
        )

    def _adopt(self, seen: Sighting, spec: Step) -> Handover | None:
        """A request whose MN ID matches no handover: the open one it fits, if exactly one.

        It fits when it lacks this step and the step's sender is the role this
        message comes from; candidates are the handovers of the MNs owning the
        message's prefixes, or, for a message with neither MN ID nor prefix,
        every open handover.
        """
        pool: Iterable[Handover]
        if seen.prefixes:
            owners = (self.tunnels.owner_of_prefix(p) for p in seen.prefixes)
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

    def _record(self, handover: Handover, seen: Sighting, spec: Step) -> None:
        handover.last_activity = max(handover.last_activity, seen.time)
        if handover.mn_id is None and seen.mn_id is not None:
            handover.mn_id = seen.mn_id
            mobile = self.tunnels.mobile(seen.mn_id)
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

    def _advance(self, handover: Handover, seen: Sighting, spec: Step) -> None:
        """First sighting of a step: update tunnels and prefixes, settle the outcome."""
        if handover.mn_id is not None:
            mobile = self.tunnels.mobile(handover.mn_id)
            if seen.prefixes:
                for issue in self.tunnels.own_prefixes(mobile, seen.prefixes, seen.frame):
                    self._global(issue)
            mac = _mac_of(seen.link_layer_id) if seen.link_layer_id else None
            if mac is not None and mac != mobile.mac:  # (its MAC is known from then on)
                mobile.mac = mac
                mobile.version += 1
                self._macs.setdefault(mac, mobile_key(mobile.mn_id))
            self.tunnels.step_seen(mobile, spec.letter, seen, handover)
        ends = (
            spec.letter == "i"
            or (spec.letter == "e" and not seen.succeeded)
            or (spec.letter == "d" and not seen.succeeded and handover.step("e") is not None)
        )
        if ends and handover.ended_at is None:
            handover.ended_at = seen.time

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
                    Rule.PAIRING,
                    f"{seen.message} seq={seen.sequence} answers no {request} seen "
                    f"from {seen.dst} to {seen.src}",
                    (seen.frame,),
                    mn=seen.mn_id,
                )
            )
            return
        if seen.message != "PBA" or not seen.succeeded or seen.mn_id is None:
            return
        mobile = self.tunnels.mobile(seen.mn_id)
        for issue in self.tunnels.binding_acknowledged(mobile, seen, pending):
            self._global(issue)

    def _ordinary_unanswered(self, seen: Sighting, *, capture_end: float | None = None) -> None:
        what = f"{seen.message} seq={seen.sequence} from {seen.src} to {seen.dst} never answered"
        if capture_end is not None and capture_end - seen.time < INITIAL_TIMEOUT:
            what += " (the capture ends first)"
        self._global(Issue("warning", Rule.MISSING_RESPONSE, what, (seen.frame,), mn=seen.mn_id))

    # -- data plane ------------------------------------------------------------------

    def _data(self, record: FrameRecord) -> None:
        payload = record.payload
        assert payload is not None
        frame = record.frame.number
        inner = payload.hops[-1]
        tunnels = self.tunnels
        # The inner header's addresses, read from the frame: no address object hashed.
        octets = record.frame.data
        downlink_mn = tunnels.owner_at(octets, inner.offset + 24)
        uplink_mn = tunnels.owner_at(octets, inner.offset + 8)
        mobile = downlink_mn or uplink_mn
        tunnel: Tunnel | None = None
        if payload.tunnelled:
            tunnel = (payload.hops[-2].src, payload.hops[-2].dst)
        if mobile is None:
            self.counters.data_unattributed += 1
            foreign = tunnels.check_unowned(tunnel, inner.src, inner.dst, frame)
            if foreign is not None:
                # Set up for one MN: the issue is its handover's, if one is open.
                owner = self._current(foreign.mn)
                if owner is not None:
                    owner.issues.append(foreign)
                else:
                    self._global(foreign)
            return
        self.counters.data += 1
        direction = DOWN if downlink_mn is not None else UP
        handover = mobile.current if mobile.current and not mobile.current.closed else None
        flow_key = None
        if self.on_event is None:  # (a chart needs each packet's event, made below)
            flow_key = _flow_key(record)
            flow = self._flows.get(flow_key)
            if flow is not None and self._flow_holds(flow, mobile, direction, handover, record):
                if flow.segment is not None:
                    flow.segment.count += 1
                    flow.segment.last_frame = frame
                return
        roles = self._role_by_text(handover)
        issue = tunnels.check(mobile, tunnel, direction, inner.src, inner.dst, frame)
        if issue is not None:
            if handover is not None:
                handover.issues.append(issue)
            else:
                self._global(issue)
        sender, receiver = self._data_ends(record, mobile, direction, tunnel)
        # Joined with +: an f-string formats a str subclass (a Role) by a slow method call.
        arrow = "=>" if tunnel else "->"
        sender_name = self._role_name(sender, roles)
        receiver_name = self._role_name(receiver, roles)
        hop = sender_name + arrow + receiver_name
        phase = ("j" if direction == DOWN else "k") if mobile.handed_over else "before"
        segment = None
        if handover is not None:
            segment = handover.data.get((phase, hop))
            if segment is None:
                segment = handover.data[(phase, hop)] = DataSegment(
                    phase, hop, frame, frame, 1, bool(tunnel)
                )
            else:
                segment.count += 1
                segment.last_frame = frame
        ends = (sender, receiver)
        known = self._end_roles(ends)
        self._note_end(sender, sender_name, frame)
        if receiver == sender:  # noting the sender may have named it otherwise
            receiver_name = self._role_name(receiver, roles)
        self._note_end(receiver, receiver_name, frame)
        if flow_key is not None:
            if issue is None and self._end_roles(ends) == known:
                # Noting the ends changed nothing: the next packet of this flow comes to
                # the same, and noting them again would change nothing either.
                flow = _Flow(mobile, mobile.version, direction, ends, known, segment)
                if handover is not None:
                    flow.handover, flow.steps = handover.number, len(handover.steps)
                flow.mac_names = self._mac_names(record, tunnel)
                self._remember_flow(flow_key, flow)
            return
        label = STEP_BY_LETTER[phase].label if phase in DATA_STEPS else f"{direction} data"
        inside = f"{address_text(inner.src)} -> {address_text(inner.dst)}"
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

    def _flow_holds(
        self,
        flow: _Flow,
        mobile: MobileState,
        direction: Direction,
        handover: Handover | None,
        record: FrameRecord,
    ) -> bool:
        """Does what ``flow`` came to still hold: has nothing it depends on changed?"""
        return (
            flow.mobile is mobile
            and flow.version == mobile.version
            and flow.direction == direction
            and flow.handover == (None if handover is None else handover.number)
            and (handover is None or flow.steps == len(handover.steps))
            and self._end_roles(flow.ends) == flow.end_roles
            and (flow.mac_names is None or self._mac_names(record, None) == flow.mac_names)
        )

    def _end_roles(self, ends: tuple[str, str]) -> tuple[Role | None, Role | None]:
        """What naming a hop's ends depends on, beside the handover: their first roles.

        An MN is named MN whatever its roles (see _role_name).
        """
        sender, receiver = ends
        primary_role = self.entities.primary_role
        return (
            None if sender.startswith("mn:") else primary_role(sender),
            None if receiver.startswith("mn:") else primary_role(receiver),
        )

    def _mac_names(
        self, record: FrameRecord, tunnel: Tunnel | None
    ) -> tuple[str | None, str | None] | None:
        """The names signalling gave the MACs of a plain packet (``_data_ends`` uses them)."""
        frame = record.frame
        if tunnel is not None or frame.linktype != LINKTYPE_ETHERNET or len(frame.data) < 14:
            return None
        return self._macs.get(frame.data[0:6]), self._macs.get(frame.data[6:12])

    def _remember_flow(self, key: bytes, flow: _Flow) -> None:
        if len(self._flows) >= MAX_FLOWS:
            self._flows.clear()
        self._flows[key] = flow

    def _data_ends(
        self,
        record: FrameRecord,
        mobile: MobileState,
        direction: Direction,
        tunnel: Tunnel | None,
    ) -> tuple[str, str]:
        """Entity keys of the hop a data packet is on.

        A tunnel names its ends. A plain packet is named by its MACs where
        signalling taught them; else the MN's own MAC (its MN-LL-ID) tells the
        access leg (MAG<->MN) from the correspondent's leg (CN<->LMA), whose
        LMA is the anchor downlink and the serving LMA uplink.
        """
        if tunnel is not None:
            return address_text(tunnel[0]), address_text(tunnel[1])
        payload = record.payload
        assert payload is not None
        inner = payload.hops[-1]
        mn = mobile_key(mobile.mn_id)
        correspondent = address_text(inner.src if direction == DOWN else inner.dst)
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
                far = address_text(mobile.serving_mag)
        else:
            lma = mobile.anchor if direction == DOWN else mobile.serving_lma
            near = address_text(lma) if lma is not None else mn
            far = correspondent
        near = (self._macs.get(mn_end) if mn_end is not None else None) or near
        far = (self._macs.get(far_end) if far_end is not None else None) or far
        return (far, near) if direction == DOWN else (near, far)

    def _role_by_text(self, handover: Handover | None) -> dict[str, Role]:
        if handover is None:
            return {}
        if handover.role_by_text is None:
            handover.role_by_text = {
                address_text(address): role for role, address in handover.live_roles().items()
            }
        return handover.role_by_text

    def _role_name(self, key: str, roles: dict[str, Role]) -> Role:
        """The role of an entity key in a handover (``roles``: text -> role), else its own."""
        role = roles.get(key)
        if role is not None:
            return role
        if key.startswith("mn:"):
            return MN
        own = self.entities.primary_role(key)
        if own is None:
            return CN
        if own in roles.values():
            # Another node plays that role in this handover (a back-handover's old PLMA is
            # not its PLMA): name the kind of node only, not "PLMA=>PLMA".
            return GENERIC_ROLE.get(own, own)
        return own

    def _note_end(self, key: str, name: Role, frame: int) -> None:
        """Note the entity at one end of a data hop, named ``name`` in it."""
        # "CN" is only the default: it adds nothing to a node known otherwise.
        known = name == CN and self.entities.primary_role(key) is not None
        self.entities.note(key, None if known else name, frame)

    # -- closing handovers -------------------------------------------------------------

    def _sweep(self) -> None:
        horizon = self._now - FORWARDED_WITHIN
        self._recent = {key: seen for key, seen in self._recent.items() if seen[0] >= horizon}
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
        mobile = self.tunnels.mobiles.get(handover.mn_id) if handover.mn_id is not None else None
        if mobile is not None and mobile.current is handover:
            mobile.current = None  # the caller owns it now; the MN keeps only its tunnels
        for state in handover.steps.values():
            if state.spec.letter in self._answered_step:
                continue
            for seen in state.sightings:
                key = (state.spec.message, seen.src, seen.dst, seen.sequence)
                exact = (*key, seen.mn_id)
                if self._pending.get(exact) is handover:
                    del self._pending[exact]
                same = self._pending_any_mn.get(key)
                if same is not None and handover in same:
                    same.remove(handover)
                    if not same:
                        del self._pending_any_mn[key]
        judge_handover(handover, self._answered_step, capture_end=capture_end)
        if self.ignore:
            kept = [issue for issue in handover.issues if issue.rule not in self.ignore]
            self.ignored += len(handover.issues) - len(kept)
            handover.issues = kept
        assert handover.outcome is not None
        status = handover.outcome.status
        self.outcomes[status] = self.outcomes.get(status, 0) + 1
        latency = handover.latency
        if latency is not None:
            self.latencies.append(latency)
        self._closed.append(handover)


# MN-LL-IDs read as MACs (cleared when full: the messages of one handover come close
# together, and memory must not grow with the MNs of a capture).
MAX_MACS = 1_024
_macs_of: dict[str, bytes | None] = {}


def _mac_of(identifier: str) -> bytes | None:
    """The MAC an MN-LL-ID names, if it is one (memoised: each message of an MN repeats it)."""
    if identifier in _macs_of:
        return _macs_of[identifier]
    try:
        mac: bytes | None = mac_bytes(identifier)
    except ValueError:
        mac = None
    if len(_macs_of) >= MAX_MACS:
        _macs_of.clear()
    _macs_of[identifier] = mac
    return mac


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
