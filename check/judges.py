"""The checks: of each message as it arrives, and of a handover once it is closed.

:func:`message_findings` rules on what one message shows by itself
(checksum, encoding, options, flags). :func:`judge_handover` runs every
cross-message check of a closed handover (order, pairing and
retransmissions, peers, identity, statuses, contents) and gives it its
:class:`~lmaho_check.report.Verdict`. Each finding is an
:class:`~lmaho_check.report.Issue` naming its :class:`~lmaho_procedure.Rule`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from lmaho_procedure import (
    BMAG,
    INITIAL_TIMEOUT,
    MAX_RETRANSMISSIONS,
    NLMA,
    PLMA,
    SIGNALLING_LETTERS,
    STEP_BY_LETTER,
    Rule,
    Step,
)
from lmaho_wire.codec import Message
from lmaho_wire.registry import current_schema

from .contents import CONTENTS, PROXY_MESSAGES
from .freshness import seq_after
from .report import (
    Address,
    Handover,
    Issue,
    LmaAddress,
    Prefix,
    ResentRequest,
    Severity,
    Sighting,
    StepState,
    Verdict,
)

# Retransmission intervals may come this much early (clock jitter) before we warn.
TIMER_TOLERANCE = 0.9


# --- one message by itself ---------------------------------------------------------


def message_findings(msg: Message, seen: Sighting, spec: Step | None) -> list[Issue]:
    """What one message shows by itself: checksum, encoding, options, flags.

    ``spec`` is the step of the handover the message was placed in, if any.
    """
    out: list[Issue] = []
    name = seen.message if spec is None else spec.label
    frames = (seen.frame,)
    step = None if spec is None else spec.letter
    if seen.checksum_ok is False:
        out.append(
            Issue(
                "violation",
                Rule.CHECKSUM,
                f"{name}: bad Mobility Header checksum 0x{msg.checksum:04x}",
                frames,
                step,
                seen.mn_id,
            )
        )
    for finding in msg.findings:
        if finding.kind != "checksum":
            out.append(
                Issue("warning", Rule.ENCODING, f"{name}: {finding}", frames, step, seen.mn_id)
            )
    for title, value, again in seen.repeated:
        out.append(
            Issue(
                "violation",
                Rule.REPEATED_OPTION,
                f"{name} carries {title} twice ({value!r} and {again!r}): "
                "the schema allows it once",
                frames,
                step,
                seen.mn_id,
            )
        )
    if seen.uncaptured:
        out.append(
            Issue(
                "warning",
                Rule.SNAPSHOT_LENGTH,
                f"{name}: the capture did not keep its last {seen.uncaptured} octets (its "
                "snapshot length): options past them and the checksum not checked",
                frames,
                step,
                seen.mn_id,
            )
        )
    if spec is None:
        return out
    contents = CONTENTS[spec.letter]
    missing: list[str] = []
    if not seen.uncaptured:  # an option the capture did not keep may be there
        missing = [key for key in contents.must if key not in seen.option_keys]
        if seen.succeeded and seen.status is not None:
            missing += [key for key in contents.must_on_success if key not in seen.option_keys]
    if spec.message not in PROXY_MESSAGES:
        extra = sorted(seen.option_keys - _LISTED[spec.letter])
        if extra:
            titles = ", ".join(_option_title(key) for key in extra)
            out.append(
                Issue(
                    "warning",
                    Rule.UNEXPECTED_OPTION,
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
                Rule.MANDATORY_OPTION,
                f"{name} lacks {titles}",
                frames,
                step,
                seen.mn_id,
            )
        )
    if contents.flags and seen.flags is not None and seen.succeeded:
        unset = [flag for flag in contents.flags if flag not in seen.flags]
        if unset:
            out.append(
                Issue(
                    "violation",
                    Rule.FLAGS,
                    f"{name} without flag(s) {', '.join(unset)} set",
                    frames,
                    step,
                    seen.mn_id,
                )
            )
    if contents.flags and seen.flags is not None and not seen.succeeded:
        # A response's flag reports what was done (LMA_HAck's T: "the PLMA-NLMA tunnel is
        # established", docs/wire-format.md 3.2): a refusal did not do it.
        claimed = [flag for flag in contents.flags if flag in seen.flags]
        if claimed:
            out.append(
                Issue(
                    "violation",
                    Rule.FLAGS,
                    f"{name} refuses ({seen.status_name}) with flag(s) {', '.join(claimed)} "
                    "set, which only an accepting response sets",
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
                Rule.HANDOFF_INDICATOR,
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
                Rule.LIFETIME,
                f"{name} carries lifetime 0: the binding being transferred has none left",
                frames,
                step,
                seen.mn_id,
            )
        )
    return out


# Step letter -> every option its message may carry (section 7's MUST and MAY columns).
_LISTED = {
    letter: frozenset((*contents.must, *contents.may, *contents.must_on_success))
    for letter, contents in CONTENTS.items()
}


def _option_title(key: str) -> str:
    try:
        return current_schema().option_by_key(key)[1].title
    except KeyError:
        return key


# --- a closed handover ------------------------------------------------------------


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
        self, rule: Rule, what: str, *sightings: Sighting, step: str | None = None
    ) -> None:
        self._add("violation", rule, what, sightings, step)

    def warning(self, rule: Rule, what: str, *sightings: Sighting, step: str | None = None) -> None:
        self._add("warning", rule, what, sightings, step)

    def _add(
        self,
        severity: Severity,
        rule: Rule,
        what: str,
        sightings: tuple[Sighting, ...],
        step: str | None,
    ) -> None:
        frames = tuple(sorted({s.frame for s in sightings}))
        self.issues.append(Issue(severity, rule, what, frames, step, self.handover.mn_id))


def judge_handover(
    handover: Handover, answered_step: dict[str, str], *, capture_end: float | None
) -> None:
    """Every cross-message check of one handover, then its outcome."""
    judge = _Judge(handover, answered_step, capture_end)
    handover.roles = handover.live_roles()  # infer_roles(), kept since its last step
    handover.prefixes = _handover_prefixes(handover)
    _check_order(handover, judge)
    _check_identity(handover, judge)
    _check_peers(handover, judge)
    _check_pairs_and_retransmissions(handover, judge)
    _check_statuses(handover, judge)
    _check_contents(handover, judge)
    handover.outcome = _verdict(handover, judge)
    handover.retransmissions.sort(key=lambda r: r.frames)
    handover.issues.sort(key=lambda i: (i.frames[:1] or (0,), i.severity != "violation"))


def _check_order(handover: Handover, judge: _Judge) -> None:
    """Steps in the draft's order by capture time (frame order breaks ties): a capture of
    several links in one file (dumpcap -i a -i b) may write a later packet of one link
    before an earlier one of another."""
    present = [
        handover.steps[letter].first for letter in SIGNALLING_LETTERS if letter in handover.steps
    ]
    letters = [letter for letter in SIGNALLING_LETTERS if letter in handover.steps]
    for (earlier_letter, earlier), (later_letter, later) in zip(
        zip(letters, present, strict=True),
        zip(letters[1:], present[1:], strict=True),
        strict=False,
    ):
        if (later.time, later.frame) < (earlier.time, earlier.frame):
            judge.violation(
                Rule.ORDER,
                f"({later_letter}) {later.message} (frame {later.frame}) comes before "
                f"({earlier_letter}) {earlier.message} (frame {earlier.frame}); "
                f"the draft orders ({earlier_letter}) first",
                later,
                earlier,
                step=later_letter,
            )


def _all_sightings(handover: Handover) -> Iterator[tuple[str, Sighting]]:
    for letter in SIGNALLING_LETTERS:
        state = handover.steps.get(letter)
        if state is not None:
            for seen in state.sightings:
                yield letter, seen


@dataclass(frozen=True)
class _Identity:
    """Something every message of a handover that carries it must carry alike."""

    rule: Rule
    #: What a message carries, or None when it carries none.
    value: Callable[[Sighting], object]
    #: The handover's own value, when it has one (else: the first message's that carries one).
    expected: Callable[[Handover], object] | None
    #: The finding: (message label, its value, the handover's value, (letter, Sighting) of that).
    sentence: Callable[[str, Any, Any, tuple[str, Sighting]], str]


_IDENTITIES = (
    _Identity(
        Rule.MN_ID,
        lambda seen: seen.mn_id,
        lambda handover: handover.mn_id,
        lambda label, value, wanted, source: (
            f"{label} carries MN ID {value!r}, the handover's is {wanted!r} "
            f"(from ({source[0]}) frame {source[1].frame})"
        ),
    ),
    _Identity(
        Rule.PREFIX,
        # A cut message may have lost some of its prefixes with its last octets.
        lambda seen: (seen.prefixes or None) if not seen.uncaptured else None,
        None,
        lambda label, value, wanted, source: (
            f"{label} carries prefix(es) {_prefixes_text(value)}, the handover's are "
            f"{_prefixes_text(wanted)} (from ({source[0]}) frame {source[1].frame})"
        ),
    ),
    _Identity(
        Rule.LINK_LAYER_ID,
        lambda seen: seen.link_layer_id or None,
        None,
        lambda label, value, wanted, source: (
            f"{label} carries MN-LL-ID {value}, ({source[0]}) frame {source[1].frame} has {wanted}"
        ),
    ),
)


def _check_identity(handover: Handover, judge: _Judge) -> None:
    """MN ID, prefixes and link-layer ID: the same in every message of the handover."""
    sightings = list(_all_sightings(handover))
    sources: list[tuple[_Identity, object, tuple[str, Sighting]]] = []
    for identity in _IDENTITIES:
        if identity.expected is not None:
            wanted = identity.expected(handover)
            source = next((pair for pair in sightings if identity.value(pair[1]) == wanted), None)
        else:
            source = next((pair for pair in sightings if identity.value(pair[1]) is not None), None)
            wanted = None if source is None else identity.value(source[1])
        if source is not None:
            sources.append((identity, wanted, source))
    for letter, seen in sightings:
        label = f"({letter}) {seen.message}"
        for identity, wanted, source in sources:
            value = identity.value(seen)
            if value is not None and value != wanted:
                judge.violation(
                    identity.rule,
                    identity.sentence(label, value, wanted, source),
                    seen,
                    source[1],
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
                    Rule.PEER,
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
            Rule.WRONG_NLMA,
            f"(e) LMA_HO_Resp names NLMA {announced}{_ipv4_note(announced)}, but the context "
            f"went to {init.dst} with (c) LMA_HO_Init (frame {init.frame})",
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
                    Rule.WRONG_NLMA,
                    f"(f) PBU goes to {seen.dst}, but {source} {target}{_ipv4_note(target)}",
                    seen,
                    *([response] if response is not None else []),
                    step="f",
                )
    update = handover.step("g")
    if update is not None:
        nlma, plma = roles.get(NLMA), roles.get(PLMA)
        if update.lma_address is not None and nlma is not None and update.lma_address != nlma:
            judge.violation(
                Rule.POLICY_PROFILE,
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
                Rule.POLICY_PROFILE,
                f"(g) Update sets PLMAA {update.previous_lma_address}, the PLMA is {plma}",
                update,
                step="g",
            )
    ack = handover.step("h")
    if ack is not None and ack.succeeded and ack.lma_address is not None:
        nlma = roles.get(NLMA)
        if nlma is not None and ack.lma_address != nlma:
            judge.warning(
                Rule.POLICY_PROFILE,
                f"(h) Update_Ack says the profile's LMAA is {ack.lma_address}, not the NLMA {nlma}",
                ack,
                step="h",
            )
    bmag = roles.get(BMAG)
    proxy_coa = None if init is None else init.mag_address
    if init is not None and proxy_coa is not None and bmag is not None and proxy_coa != bmag:
        judge.violation(
            Rule.PROXY_COA,
            f"(c) LMA_HO_Init gives Proxy-CoA {proxy_coa}, the bMAG is {bmag}",
            init,
            step="c",
        )


def _ipv4_note(address: LmaAddress) -> str:
    """Why an IPv4 LMA Address (Option-Code 2) can never equal the IPv6 node it is held to."""
    if isinstance(address, Address):
        return ""
    return " (an IPv4 LMA Address: no IPv6 packet of this capture can go to it)"


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
            Rule.PAIRING,
            f"{label} seq={response.sequence} answers no request",
            response,
            step=letter,
        )
        return False
    requests = request_state.sightings
    same_seq = [r for r in requests if r.sequence == response.sequence]
    if not same_seq:
        seqs = sorted({r.sequence for r in requests if r.sequence is not None})
        judge.violation(
            Rule.PAIRING,
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
            Rule.PEER,
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
            ResentRequest(
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
                Rule.RETRANSMISSION,
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
                    Rule.RETRANSMISSION,
                    f"{spec.label} sent again with seq {again.sequence} (frame {again.frame}) "
                    f"instead of {previous.sequence}: a retransmission keeps its Sequence Number",
                    again,
                    previous,
                    step=spec.letter,
                )
            if waited < timeout * TIMER_TOLERANCE:
                judge.warning(
                    Rule.RETRANSMISSION,
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
                Rule.CAPTURE_END,
                f"the capture ends before {spec.label} (frame {last.frame}) is answered",
                last,
                step=spec.letter,
            )
        else:
            tries = f" after {len(copies) - 1} retransmission(s)" if len(copies) > 1 else ""
            judge.violation(
                Rule.MISSING_RESPONSE,
                f"{spec.label} seq={last.sequence} never answered{tries}",
                *copies,
                step=spec.letter,
            )


def _check_pbu_retransmission(judge: _Judge, previous: Sighting, again: Sighting) -> None:
    """RFC 5213 / 6275: a PBU sent again has a larger Sequence Number and a fresh Timestamp."""
    if (
        previous.sequence is not None
        and again.sequence is not None
        and not seq_after(again.sequence, previous.sequence)
    ):
        judge.violation(
            Rule.RETRANSMISSION,
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
            Rule.TIMESTAMP,
            f"(f) PBU sent again (frame {again.frame}) without a fresh Timestamp",
            again,
            previous,
            step="f",
        )


def _check_repeated_responses(judge: _Judge, request: StepState, response: StepState) -> None:
    """A response repeated is fine when a request copy came before it (the answer was lost)."""
    requests = request.sightings
    responses = response.sightings
    for previous, again in itertools.pairwise(responses):
        resent = any(previous.frame < r.frame < again.frame for r in requests)
        label = f"({response.spec.letter}) {again.message}"
        if not resent and again.sequence == previous.sequence:
            judge.warning(
                Rule.RETRANSMISSION,
                f"{label} repeated (frame {again.frame}) without a request sent again",
                again,
                previous,
                step=response.spec.letter,
            )
        if again.sequence == previous.sequence and int(again.status or 0) != int(
            previous.status or 0
        ):
            judge.warning(
                Rule.STATUS,
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
                Rule.STATUS,
                f"(e) LMA_HO_Resp reports {resp.status_name}, but the NLMA refused the "
                f"context with (d) LMA_HAck {hack.status_name} (frame {hack.frame})",
                resp,
                hack,
                step="e",
            )
        elif resp.status is not None and resp.status.name != "NLMA_REJECTED_HANDOVER":
            judge.warning(
                Rule.STATUS,
                f"(e) LMA_HO_Resp reports {resp.status_name} after the NLMA refused; "
                "NLMA_REJECTED_HANDOVER (135) says so",
                resp,
                step="e",
            )
    if hack is not None and resp is not None and hack.succeeded and not resp.succeeded:
        judge.warning(
            Rule.STATUS,
            f"(e) LMA_HO_Resp refuses ({resp.status_name}) although the NLMA accepted at (d)",
            resp,
            hack,
            step="e",
        )
    if ack is not None and pba is not None and not ack.succeeded and pba.succeeded:
        judge.violation(
            Rule.STATUS,
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
                    Rule.UNEXPECTED_STEP,
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
            Rule.TIMESTAMP,
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
            Rule.HANDOFF_INDICATOR,
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
    return SIGNALLING_LETTERS


def _verdict(handover: Handover, judge: _Judge) -> Verdict:
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
        judge.violation(Rule.MISSING_STEP, f"no {names} in this handover")
    if maybe_later:
        names = ", ".join(STEP_BY_LETTER[m].label for m in maybe_later)
        judge.warning(Rule.CAPTURE_END, f"the capture ends without {names}")
    hack, resp, ack, pba = (handover.step(x) for x in "dehi")
    if hack is not None and not hack.succeeded:
        return Verdict(
            "failed",
            "d",
            f"the NLMA refused the context: (d) LMA_HAck {hack.status_name} (frame {hack.frame})"
            + (f"; (e) LMA_HO_Resp {resp.status_name}" if resp is not None else ""),
        )
    if resp is not None and not resp.succeeded:
        return Verdict(
            "failed",
            "e",
            f"the PLMA refused the handover: (e) LMA_HO_Resp {resp.status_name} "
            f"(frame {resp.frame})",
        )
    if ack is not None and not ack.succeeded:
        tail = f"; (i) PBA {pba.status_name}" if pba is not None else ""
        return Verdict(
            "failed",
            "h",
            f"the policy store did not update the profile: (h) Update_Ack {ack.status_name} "
            f"(frame {ack.frame}){tail}; the bMAG keeps its route via the PLMA",
        )
    if pba is not None and not pba.succeeded:
        return Verdict(
            "failed",
            "i",
            f"the NLMA rejected the PBU: (i) PBA {pba.status_name} (frame {pba.frame})",
        )
    if pba is not None:
        return Verdict("completed", None, "")
    # A request sent again until its sender gave up, without an answer: abandoned.
    for letter, state in sorted(handover.steps.items()):
        response = judge.response_of.get(letter)
        if response is None or response in handover.steps:
            continue
        tries = len(state.sightings) - 1
        if tries and judge.settled(response, state.last.time, INITIAL_TIMEOUT * 2**tries):
            return Verdict(
                "abandoned",
                letter,
                f"{state.spec.label} never answered after {tries} retransmission(s)",
            )
    return Verdict("incomplete", last_seen, f"nothing after {STEP_BY_LETTER[last_seen].label}")


def _prefixes_text(prefixes: Iterable[Prefix]) -> str:
    return ", ".join(sorted(str(p) for p in prefixes)) or "none"


def _handover_prefixes(handover: Handover) -> frozenset[Prefix]:
    for letter in SIGNALLING_LETTERS:
        seen = handover.step(letter)
        if seen is not None and seen.prefixes:
            return seen.prefixes
    return frozenset()
