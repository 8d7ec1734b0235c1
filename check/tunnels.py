"""The data plane's bookkeeping: which MN owns which prefix, which tunnels its data may use.

Tunnels are set up and ended by signalling (docs/wire-format.md sections 7
and 8): Tunnel0 between the bMAG and the PLMA from the MN's registration or
its (b); the PLMA=>NLMA tunnel from a successful (d), and with it the
NLMA's downlink to the bMAG (make-before-break: the BCE the NLMA makes at (d)
names the bMAG); Tunnel1 between the NLMA and the bMAG from a successful
(i), which retires Tunnel0. Each data
packet is then held to them: an MN's data in a tunnel that is not (or no
longer) one of its own, or a tunnel carrying prefixes of no MN it was set up
for, is an :class:`~lmaho_check.report.Issue`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from lmaho_procedure import BMAG, PLMA, Direction, Rule

from .report import Address, Handover, Issue, Prefix, Sighting, address_text

DOWN: Direction = "downlink"
UP: Direction = "uplink"

Tunnel = tuple[Address, Address]  # outer source, outer destination


@dataclass(slots=True)
class TunnelGrant:
    """Why a tunnel may carry an MN's traffic in one direction, and whether it still may."""

    direction: Direction
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
    # By tunnel and direction: the PLMA-NLMA tunnel of one handover can run the other way
    # in the next (a back-handover), while the first is still in use.
    tunnels: dict[tuple[Address, Address, Direction], TunnelGrant] = field(default_factory=dict)
    current: Handover | None = None
    mac: bytes | None = None  # the MN-LL-ID, when it is a MAC address
    # Where the MN's plain (untunnelled) traffic enters and leaves the domain: the LMA
    # anchoring its prefix (downlink in), the LMA serving it (uplink out), its MAG.
    anchor: Address | None = None
    serving_lma: Address | None = None
    serving_mag: Address | None = None
    # Its last handover completed: its data is the draft's (j) and (k) until the next one.
    handed_over: bool = False
    # Counts the changes to its tunnels, attachment and MAC: what its data is held to and
    # named by. A verdict on its data reached at one version holds for the next packet
    # at the same version (the analyser's flows).
    version: int = 0

    def attach(self, lma: Address, mag: Address) -> None:
        """The MN is bound at ``lma`` through ``mag`` (its first LMA is its anchor)."""
        self.anchor = self.anchor or lma
        self.serving_lma, self.serving_mag = lma, mag
        self.version += 1


class TunnelTracker:
    """Every MN seen, the prefixes it owns and its tunnels, as the signalling sets them up."""

    def __init__(self) -> None:
        self.mobiles: dict[str, MobileState] = {}
        # Prefix owners by length, then by the prefix's leading octets: a packet's owner is
        # one slice of its octets and one dict look-up per prefix length in use.
        self._prefix_owner: dict[int, dict[bytes, MobileState]] = {}
        self._prefix_lengths: set[int] = set()
        # (octets, mask of the last one, owners) per length, in the order of the set above.
        self._owner_tables: list[tuple[int, int, dict[bytes, MobileState]]] = []
        self._tunnel_users: dict[Tunnel, set[str]] = {}

    def mobile(self, mn_id: str) -> MobileState:
        """The MN's state, made on first use."""
        mobile = self.mobiles.get(mn_id)
        if mobile is None:
            mobile = self.mobiles[mn_id] = MobileState(mn_id)
        return mobile

    # -- prefixes --------------------------------------------------------------------

    def own_prefixes(
        self, mobile: MobileState, prefixes: Iterable[Prefix], frame: int
    ) -> list[Issue]:
        """``prefixes`` are ``mobile``'s now; a warning for each that was another MN's."""
        issues = []
        for prefix in prefixes:
            if prefix in mobile.prefixes:
                continue
            owner = self.owner_of_prefix(prefix)
            if owner is not None and owner is not mobile:
                issues.append(
                    Issue(
                        "warning",
                        Rule.PREFIX,
                        f"prefix {prefix} of MN {mobile.mn_id} was MN {owner.mn_id}'s",
                        (frame,),
                        mn=mobile.mn_id,
                    )
                )
                owner.prefixes.discard(prefix)
            mobile.prefixes.add(prefix)
            length = prefix.prefixlen
            if length not in self._prefix_lengths:
                self._prefix_lengths.add(length)
                self._prefix_owner[length] = {}
                self._owner_tables = [
                    (-(-n // 8), (0xFF << (-n % 8)) & 0xFF, self._prefix_owner[n])
                    for n in self._prefix_lengths
                ]
            self._prefix_owner[length][_prefix_octets(prefix)] = mobile
        return issues

    def owner_of(self, address: Address) -> MobileState | None:
        """The MN one of whose prefixes holds ``address``."""
        return self.owner_at(address.packed, 0)

    def owner_at(self, octets: bytes, start: int) -> MobileState | None:
        """The owner of the address at ``octets[start:start + 16]`` (a packet's, unparsed)."""
        for size, mask, owners in self._owner_tables:
            key = octets[start : start + size]
            if mask != 0xFF and size:
                key = key[:-1] + bytes((key[-1] & mask,))
            owner = owners.get(key)
            if owner is not None:
                return owner
        return None

    def owner_of_prefix(self, prefix: Prefix) -> MobileState | None:
        owners = self._prefix_owner.get(prefix.prefixlen)
        return None if owners is None else owners.get(_prefix_octets(prefix))

    # -- tunnels set up and ended by signalling ---------------------------------------

    def step_seen(
        self, mobile: MobileState, letter: str, seen: Sighting, handover: Handover
    ) -> None:
        """The first message of a handover's step: the tunnels it sets up or ends."""
        # Tunnels run between the addresses of the messages that set them up.
        if letter == "b":
            reason = f"Tunnel0 of the MN's binding with the PLMA (from (b) frame {seen.frame})"
            self._grant(mobile, seen.dst, seen.src, DOWN, reason)
            self._grant(mobile, seen.src, seen.dst, UP, reason)
            mobile.attach(seen.dst, seen.src)
            mobile.handed_over = False
        if letter == "d" and seen.succeeded:
            reason = f"PLMA-NLMA tunnel from (d) frame {seen.frame}"
            self._grant(mobile, seen.dst, seen.src, DOWN, reason)
            self._grant(mobile, seen.src, seen.dst, UP, reason)
            # Make-before-break: the BCE the NLMA makes at (d) names the bMAG as Proxy-CoA
            # (LMA_HO_Init's MAG IPv6 Address), so the NLMA routes the downlink arriving
            # through the PLMA-NLMA tunnel on to the bMAG at once (docs/wire-format.md 8).
            init = handover.step("c")
            bmag = init.mag_address if init is not None else None
            if bmag is None:
                bmag = handover.live_roles().get(BMAG)
            if bmag is not None:
                proxy_coa = address_text(bmag)
                reason = f"the NLMA's BCE from (d) frame {seen.frame}, Proxy-CoA {proxy_coa}"
                self._grant(mobile, seen.src, bmag, DOWN, reason)
        if letter == "i":
            plma = handover.live_roles().get(PLMA)
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
            else:
                refused = f"(i) frame {seen.frame} refused the handover"
                self._retire(mobile, nlma, bmag, refused)
                if plma:
                    self._retire(mobile, plma, nlma, refused)
                    self._retire(mobile, nlma, plma, refused)

    def binding_acknowledged(
        self, mobile: MobileState, pba: Sighting, request: Sighting
    ) -> list[Issue]:
        """A PBA accepting ``request`` outside any handover: a registration or a de-registration."""
        if request.lifetime == 0:  # a de-registration: the binding and its tunnel are gone
            ended = f"the de-registration acknowledged by PBA frame {pba.frame}"
            self._retire(mobile, pba.src, pba.dst, ended)
            self._retire(mobile, pba.dst, pba.src, ended)
            return []
        # A registration: the MN's binding, Tunnel0.
        issues = self.own_prefixes(mobile, pba.prefixes or request.prefixes, pba.frame)
        reason = f"binding registered by PBA frame {pba.frame}"
        self._grant(mobile, pba.src, pba.dst, DOWN, reason)
        self._grant(mobile, pba.dst, pba.src, UP, reason)
        mobile.attach(pba.src, pba.dst)
        return issues

    def _grant(
        self, mobile: MobileState, src: Address, dst: Address, direction: Direction, reason: str
    ) -> None:
        mobile.tunnels[(src, dst, direction)] = TunnelGrant(direction, reason)
        mobile.version += 1
        users = self._tunnel_users.get((src, dst))
        if users is None:
            users = self._tunnel_users[(src, dst)] = set()
        users.add(mobile.mn_id)

    def _retire(self, mobile: MobileState, src: Address, dst: Address, why: str) -> None:
        """The tunnel ``src`` => ``dst`` no longer carries the MN's data, either way."""
        for direction in (DOWN, UP):
            grant = mobile.tunnels.get((src, dst, direction))
            if grant is not None:
                grant.retired_by = why
                mobile.version += 1

    # -- data packets held to them ---------------------------------------------------

    def check(
        self,
        mobile: MobileState,
        tunnel: Tunnel | None,
        direction: Direction,
        inner_src: Address,
        inner_dst: Address,
        frame: int,
    ) -> Issue | None:
        """What is wrong with ``mobile``'s data in ``tunnel`` (None: not tunnelled), if anything."""
        if tunnel is None:
            return None
        grant = mobile.tunnels.get((*tunnel, direction))
        if grant is not None and grant.active:
            return None
        what = (
            f"{direction} data of MN {mobile.mn_id} ({inner_src} -> {inner_dst}) "
            f"tunnelled {tunnel[0]} => {tunnel[1]}"
        )
        if grant is None:
            usable = [
                f"{s} => {d}"
                for (s, d, way), g in mobile.tunnels.items()
                if g.active and way == direction
            ]
            reverse = mobile.tunnels.get((*tunnel, UP if direction == DOWN else DOWN))
            because = (
                "a tunnel of the other direction"
                if reverse is not None
                else "not one of its tunnels"
            )
            rule = Rule.TUNNEL
            if reverse is None and tunnel in self._tunnel_users:
                rule = Rule.FOREIGN_PREFIX
                because = (
                    f"a tunnel set up for MN {_few(sorted(self._tunnel_users[tunnel]))}, "
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
            Rule.TUNNEL,
            f"{what}: a tunnel out of use since {grant.retired_by} (it came from {grant.reason})",
            (frame,),
            mn=mobile.mn_id,
        )

    def check_unowned(
        self, tunnel: Tunnel | None, inner_src: Address, inner_dst: Address, frame: int
    ) -> Issue | None:
        """Data of no known MN: a violation if it is in a tunnel set up for some MN."""
        if tunnel is None or tunnel not in self._tunnel_users:
            return None
        users = sorted(self._tunnel_users[tunnel])
        return Issue(
            "violation",
            Rule.FOREIGN_PREFIX,
            f"tunnel {tunnel[0]} => {tunnel[1]} (of MN {_few(users)}) carries "
            f"{inner_src} -> {inner_dst}, outside the prefixes of its MNs "
            f"({self._prefix_text(users)})",
            (frame,),
            mn=users[0] if len(users) == 1 else None,
        )

    def _prefix_text(self, mn_ids: Iterable[str]) -> str:
        prefixes = sorted(
            {
                str(p)
                for mn_id in mn_ids
                if mn_id in self.mobiles
                for p in self.mobiles[mn_id].prefixes
            }
        )
        return _few(prefixes) or "none known"


# A tunnel between a MAG and an LMA carries every MN between them: a report names a few.
FEW = 5


def _few(names: list[str]) -> str:
    """The first FEW of ``names``, joined, and how many more there are."""
    if len(names) <= FEW:
        return ", ".join(names)
    return f"{', '.join(names[:FEW])} and {len(names) - FEW} more"


def _prefix_octets(prefix: Prefix) -> bytes:
    """The octets a prefix covers (in part, for the last one; its host bits are zero)."""
    return prefix.network_address.packed[: -(-prefix.prefixlen // 8)]
