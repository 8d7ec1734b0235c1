"""The agent daemon: one entity of the draft, live, in the current network namespace.

:class:`Agent` builds the entity the configuration names (a
:class:`~lmaho_entities.BoundaryMag`, :class:`~lmaho_entities.Lma` or
:class:`~lmaho_entities.PolicyStore`) on a :class:`RealTimeScheduler`, a
:class:`LiveNetwork` and (bMAG, LMA) a :class:`LinuxDataPlane`, opens the
control socket, and runs one loop that waits on every socket and on the
next timer. SIGTERM, SIGINT and the ``shutdown`` command end the loop;
whatever the agent added is then removed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import selectors
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable
from ipaddress import IPv6Address, IPv6Network
from typing import Any, ClassVar, TextIO, TypeVar

from lmaho_entities import (
    ApReport,
    BoundaryMag,
    HandoverResult,
    Lma,
    MobileContext,
    Node,
    PolicyRoute,
    PolicyStore,
    RegistrationResult,
)
from lmaho_entities.scenario import link_local
from lmaho_wire import option
from lmaho_wire.errors import LmahoError
from lmaho_wire.packet import mac_bytes
from lmaho_wire.schema import BA_STATUS, HANDOVER_STATUS

from .clock import RealTimeScheduler
from .config import AgentConfig, BmagSettings, LmaSettings, StoreSettings
from .control import ControlServer
from .dataplane import LinuxDataPlane
from .events import EventLog
from .network import LiveNetwork
from .policydb import PolicyDatabase

E = TypeVar("E", bound=Node)
T = TypeVar("T")

#: Longest sleep of the loop with no timer pending (it also notices a stop request).
IDLE_WAKEUP = 1.0
FORWARDING_SYSCTL = "/proc/sys/net/ipv6/conf/all/forwarding"


class AgentError(LmahoError):
    """The agent cannot start: the message names what is missing."""


class BadRequest(Exception):
    """A control request the agent cannot carry out (the reply's error text)."""


class Agent:
    """One live entity; :meth:`run` serves until stopped and returns the exit status."""

    def __init__(self, config: AgentConfig, *, stream: TextIO = sys.stdout, as_json: bool = False):
        self.config = config
        self.events = EventLog(stream, agent=config.name, role=config.role, as_json=as_json)
        self.counters: Counter[str] = Counter()
        self.scheduler = RealTimeScheduler()
        self.selector = selectors.DefaultSelector()
        self.stopping = False
        self._cleanup: list[Callable[[], None]] = []
        self.network: LiveNetwork | None = None
        self.data_plane: LinuxDataPlane | None = None
        self.database: PolicyDatabase | None = None
        self.entity: Node | None = None
        # bMAG bookkeeping beyond the entity: access links, handover numbers, start times.
        self._access: dict[str, tuple[str, tuple[IPv6Network, ...]]] = {}
        self._handovers: Counter[str] = Counter()
        self._started: dict[tuple[str, int], float] = {}

    # --- the loop --------------------------------------------------------------------------

    def watch(self, fd: int, callback: Callable[[], None]) -> None:
        self.selector.register(fd, selectors.EVENT_READ, callback)

    def unwatch(self, fd: int) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(fd)

    def run(self) -> int:
        try:
            self.open()
            self.events.emit(
                "ready",
                address=str(self.config.address),
                control=str(self.config.control),
                tunnel_mode=None if self.data_plane is None else self.data_plane.mode,
            )
            while not self.stopping:
                self._turn()
        finally:
            self.close()
        return 0

    def _turn(self) -> None:
        self.events.flush()  # before waiting: what happened is in the log
        timeout = self.scheduler.timeout()
        timeout = IDLE_WAKEUP if timeout is None else min(timeout, IDLE_WAKEUP)
        for key, _ in self.selector.select(timeout):
            self._guarded("socket", key.data)
        self._guarded("timer", self.scheduler.run_due)

    def _guarded(self, what: str, call: Callable[[], object]) -> None:
        """Run ``call``; a bug it hits is an ``error`` event, not the end of the agent."""
        try:
            call()
        except Exception as e:
            self.counters["errors"] += 1
            self.events.emit("error", message=f"{what}: {type(e).__name__}: {e}")

    def stop(self, *_: object) -> None:
        self.stopping = True

    # --- setting up and tearing down ----------------------------------------------------------

    def open(self) -> None:
        """Open sockets, data plane, entity and control socket; AgentError naming what failed."""
        config = self.config
        if os.geteuid() != 0:
            raise AgentError(
                f"agent {config.name}: needs root (CAP_NET_RAW for raw sockets, "
                "CAP_NET_ADMIN for tunnels and routes)"
            )
        self._catch_signals()
        try:
            self.network = LiveNetwork(
                config.address,
                config.peers,
                self.events,
                self.counters,
                lose_step=config.lose_step,
                before_delivery=self.scheduler.advance,
            )
        except OSError as e:
            if e.errno == errno.EADDRNOTAVAIL:
                raise AgentError(
                    f"agent {config.name}: address {config.address} is not configured "
                    "in this network namespace"
                ) from None
            raise AgentError(f"agent {config.name}: raw socket of protocol 135: {e}") from None
        self._cleanup.append(self.network.close)
        self.watch(self.network.fileno(), self.network.on_readable)
        if config.role != "policy-store":
            self._open_data_plane()
        self.entity = self._make_entity()
        self.network.node = self.entity
        control = ControlServer(config.control, self.handle, self.watch, self.unwatch)
        self._cleanup.append(control.close)

    def _catch_signals(self) -> None:
        read_end, write_end = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        previous_fd = signal.set_wakeup_fd(write_end)
        handlers = {sig: signal.signal(sig, self.stop) for sig in (signal.SIGTERM, signal.SIGINT)}

        def drain() -> None:
            with contextlib.suppress(BlockingIOError):
                os.read(read_end, 512)

        def restore() -> None:
            signal.set_wakeup_fd(previous_fd)
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
            self.unwatch(read_end)
            os.close(read_end)
            os.close(write_end)

        self.watch(read_end, drain)
        self._cleanup.append(restore)

    def _open_data_plane(self) -> None:
        config = self.config
        bmag = config.bmag if config.role == "bmag" else None
        try:
            self.data_plane = LinuxDataPlane(
                config.address,
                mode=config.tunnels,
                events=self.events,
                counters=self.counters,
                watch=self.watch,
                unwatch=self.unwatch,
                table_base=BmagSettings.table_base if bmag is None else bmag.table_base,
                rule_priority=BmagSettings.rule_priority if bmag is None else bmag.rule_priority,
            )
        except OSError as e:
            raise AgentError(f"agent {config.name}: data plane: {e}") from None
        self._cleanup.append(self.data_plane.close)
        try:
            with open(FORWARDING_SYSCTL) as f:
                forwarding = f.read().strip()
        except OSError:
            forwarding = "?"
        if forwarding == "0":
            self.events.emit(
                "warning",
                message="net.ipv6.conf.all.forwarding is 0: the kernel will not forward MN data",
            )

    def _make_entity(self) -> Node:
        config = self.config
        network = self.network
        assert network is not None
        settings = config.section
        if isinstance(settings, BmagSettings):
            assert self.data_plane is not None
            bmag = BoundaryMag(
                config.name,
                config.address,
                self.scheduler,
                network,
                link_local=link_local(mac_bytes(settings.access_mac)),
                binding_lifetime=settings.binding_lifetime,
                data_plane=self.data_plane,
                max_mobiles=config.max_mobiles,
                max_handovers=settings.max_handovers or None,
            )
            bmag.observers.append(self._handover_done)
            bmag.registration_observers.append(self._registration_done)
            return bmag
        if isinstance(settings, LmaSettings):
            assert self.data_plane is not None
            return Lma(
                config.name,
                config.address,
                self.scheduler,
                network,
                store=settings.store,
                upstream=settings.upstream or config.address,
                access_points={ap.option_data(): ap.lma for ap in settings.access_points},
                max_lifetime=settings.max_lifetime,
                refuse_context=None
                if settings.refuse_context is None
                else HANDOVER_STATUS[settings.refuse_context],
                reject_pbu=None if settings.reject_pbu is None else BA_STATUS[settings.reject_pbu],
                data_plane=self.data_plane,
                max_mobiles=config.max_mobiles,
            )
        assert isinstance(settings, StoreSettings)
        self.database = PolicyDatabase(settings.database)
        self._cleanup.append(self.database.close)
        return PolicyStore(
            config.name,
            config.address,
            self.scheduler,
            network,
            fail_updates=None
            if settings.fail_updates is None
            else HANDOVER_STATUS[settings.fail_updates],
            profiles=self.database,
            max_mobiles=config.max_mobiles,
        )

    def close(self) -> None:
        """Undo :meth:`open` in reverse order, each step even when an earlier one failed."""
        while self._cleanup:
            undo = self._cleanup.pop()
            try:
                undo()
            except Exception as e:
                self.events.emit("error", message=f"cleaning up: {type(e).__name__}: {e}")
        self.selector.close()
        if self.entity is not None:
            self.events.emit("stopped", counters=self._counters())
        self.events.flush()

    # --- the control socket ---------------------------------------------------------------------

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        command = request["cmd"]
        handler = self._commands.get(command)
        if handler is None:
            return {"ok": False, "error": f"unknown command {command!r}"}
        self.scheduler.advance()
        try:
            reply = handler(self, request)
        except BadRequest as e:
            return {"ok": False, "error": str(e)}
        except (LmahoError, ValueError) as e:
            return {"ok": False, "error": f"{command}: {e}"}
        except Exception as e:
            # A bug: say so to the caller and in the log, and keep serving.
            self.counters["errors"] += 1
            self.events.emit("error", message=f"{command}: {type(e).__name__}: {e}")
            return {"ok": False, "error": f"{command}: internal error: {type(e).__name__}: {e}"}
        return {"ok": True, **reply}

    def _status(self, request: dict[str, Any]) -> dict[str, Any]:
        entity = self.entity
        status: dict[str, Any] = {
            "agent": self.config.name,
            "role": self.config.role,
            "address": str(self.config.address),
            "tunnel_mode": None if self.data_plane is None else self.data_plane.mode,
            "counters": self._counters(),
        }
        if self.data_plane is not None:
            status.update(self.data_plane.status())
        if isinstance(entity, BoundaryMag):
            status["mobiles"] = [
                {
                    "mn_id": mn_id,
                    "mac": ":".join(f"{b:02x}" for b in m.mac),
                    "prefixes": [str(p) for p in m.context.prefixes],
                    "address": str(m.address),
                    "serving_lma": str(m.serving_lma),
                    "policy_route": _interface(entity.policy_routes.get(mn_id)),
                    "handover": None if m.handover is None else m.handover.number,
                    "waiting": m.waiting is not None,
                }
                for mn_id, m in entity.mobiles.items()
            ]
            status["binding_update_list"] = [
                {"mn_id": mn_id, "lma": str(e.lma), "sequence": e.sequence, "lifetime": e.lifetime}
                for mn_id, e in entity.binding_update_list.items()
            ]
        elif isinstance(entity, Lma):
            status["bindings"] = [
                {
                    "mn_id": mn_id,
                    "prefixes": [str(p) for p in b.context.prefixes],
                    "proxy_coa": str(b.proxy_coa),
                    "state": b.state.value,
                    "lifetime": b.lifetime,
                    "previous_lma": None if b.previous_lma is None else str(b.previous_lma),
                    "next_lma": None if b.next_lma is None else str(b.next_lma),
                    "route": _route_of(entity, b.context.prefixes),
                }
                for mn_id, b in entity.bindings.items()
            ]
        elif self.database is not None:
            status["profiles"] = [s.as_dict() for s in self.database.stored()]
        return status

    def _attach(self, request: dict[str, Any]) -> dict[str, Any]:
        bmag = self._entity(BoundaryMag, "attach")
        assert self.data_plane is not None
        mn_id = _text(request, "mn_id")
        mac = _parsed(request, "mac", mac_bytes)
        prefix = _parsed(request, "prefix", IPv6Network)
        address = _parsed(request, "address", IPv6Address)
        interface = _text(request, "interface")
        lma = _parsed(request, "lma", IPv6Address)
        settings = self.config.bmag
        assert settings is not None
        lifetime = _number(request, "lifetime", settings.binding_lifetime)
        registration = request.get("register", "seed")
        if registration not in ("seed", "pbu"):
            raise BadRequest('attach: "register" must be "seed" or "pbu"')
        if mn_id in bmag.mobiles:
            raise BadRequest(f"attach: {mn_id} is attached already")
        if lma not in self.config.peers:
            raise BadRequest(f"attach: LMA {lma} is not among the peers of {self.config.name}")
        if self.data_plane.interface_index(interface) is None:
            raise BadRequest(f"attach: no interface named {interface!r} in this namespace")
        context = MobileContext.build(
            mn_id,
            (prefix,),
            link_layer=mac,
            access_technology=settings.access_technology,
            link_local=bmag.link_local,
        )
        if registration == "pbu":
            # RFC 5213: a PBU to the LMA; routes follow its PBA (the "registered" event).
            self._limited(lambda: bmag.register(context, mac, address, lma))
        else:
            # The state a PBU/PBA before the run would have left (as craft starts).
            self._limited(
                lambda: bmag.attach(
                    context,
                    mac,
                    address,
                    lma,
                    sequence=0,
                    lifetime=lifetime,
                    registered_at=self.scheduler.now,
                )
            )
        self.data_plane.route_on_link(context.prefixes, interface)
        self._access[mn_id] = (interface, context.prefixes)
        return {}

    def _register(self, request: dict[str, Any]) -> dict[str, Any]:
        lma = self._entity(Lma, "register")
        mn_id = _text(request, "mn_id")
        prefix = _parsed(request, "prefix", IPv6Network)
        mag = _parsed(request, "mag", IPv6Address)
        lifetime = _number(request, "lifetime", lma.max_lifetime)
        mac = request.get("mac")
        link_local_address = request.get("link_local")
        if mag not in self.config.peers:
            raise BadRequest(f"register: MAG {mag} is not among the peers of {self.config.name}")
        context = MobileContext.build(
            mn_id,
            (prefix,),
            link_layer=None if mac is None else _parsed(request, "mac", mac_bytes),
            access_technology=request.get("access_technology", BmagSettings.access_technology),
            link_local=None
            if link_local_address is None
            else _parsed(request, "link_local", IPv6Address),
        )
        self._limited(lambda: lma.register(context, mag, lifetime, self.scheduler.now))
        return {}

    def _forget(self, request: dict[str, Any]) -> dict[str, Any]:
        mn_id = _text(request, "mn_id")
        assert self.entity is not None
        self.entity.forget(mn_id)
        access = self._access.pop(mn_id, None)
        if access is not None and self.data_plane is not None:
            self.data_plane.unroute_on_link(access[1])
        return {}

    def _deregister(self, request: dict[str, Any]) -> dict[str, Any]:
        bmag = self._entity(BoundaryMag, "deregister")
        mn_id = _text(request, "mn_id")
        if not bmag.deregister(mn_id):
            raise BadRequest(f"deregister: {mn_id} has no binding at {self.config.name}")
        access = self._access.pop(mn_id, None)
        if access is not None and self.data_plane is not None:
            self.data_plane.unroute_on_link(access[1])
        return {}

    def _handover(self, request: dict[str, Any]) -> dict[str, Any]:
        bmag = self._entity(BoundaryMag, "handover")
        mn_id = _text(request, "mn_id")
        new_ap = request.get("new_ap")
        if not isinstance(new_ap, dict):
            raise BadRequest('handover: "new_ap" must be {"id_type": ..., "identifier": ...}')
        mobile = bmag.mobiles.get(mn_id)
        if mobile is None:
            raise BadRequest(f"handover: {mn_id} is not attached")
        if mobile.handover is not None:
            raise BadRequest(f"handover: {mn_id} is in handover {mobile.handover.number} already")
        if mobile.waiting is not None:
            raise BadRequest(f"handover: {mn_id} is waiting for its turn already")
        if mobile.registration is not None or mn_id not in bmag.binding_update_list:
            raise BadRequest(f"handover: {mn_id} is not registered (a PBU is pending or failed)")
        try:
            ap = option(
                "new_ap_id",
                id_type=str(new_ap.get("id_type", "BSSID")),
                identifier=str(new_ap.get("identifier", "")),
            )
        except (ValueError, KeyError) as e:
            raise BadRequest(f"handover: new_ap: {e}") from None
        self._handovers[mn_id] += 1
        number = self._handovers[mn_id]
        self._started[(mn_id, number)] = time.monotonic()
        self.events.emit("handover-started", mn_id=mn_id, handover=number)
        bmag.on_report(ApReport(mn_id, ap, number), "control")
        return {"handover": number, "waiting": mobile.waiting is not None}

    def _shutdown(self, request: dict[str, Any]) -> dict[str, Any]:
        self.stop()
        return {}

    _commands: ClassVar[dict[str, Callable[[Agent, dict[str, Any]], dict[str, Any]]]] = {
        "status": _status,
        "attach": _attach,
        "register": _register,
        "forget": _forget,
        "deregister": _deregister,
        "handover": _handover,
        "shutdown": _shutdown,
    }

    # --- helpers ------------------------------------------------------------------------------

    def _handover_done(self, result: HandoverResult) -> None:
        started = self._started.pop((result.mn_id, result.handover), None)
        bmag = self.entity
        assert isinstance(bmag, BoundaryMag)
        route = bmag.policy_routes.get(result.mn_id)
        self.events.emit(
            "handover-done",
            mn_id=result.mn_id,
            handover=result.handover,
            outcome=result.outcome.value,
            completed=result.completed,
            status=result.status,
            step=result.step,
            previous_lma=str(result.previous_lma),
            new_lma=None if result.new_lma is None else str(result.new_lma),
            latency=round(time.monotonic() - started, 6)
            if started is not None and result.completed
            else None,
            tunnel=_interface(route),
        )

    def _registration_done(self, result: RegistrationResult) -> None:
        bmag = self.entity
        assert isinstance(bmag, BoundaryMag)
        self.events.emit(
            "registered",
            mn_id=result.mn_id,
            lma=str(result.lma),
            outcome=result.outcome.value,
            completed=result.completed,
            status=result.status,
            lifetime=result.lifetime,
            tunnel=_interface(bmag.policy_routes.get(result.mn_id)),
        )

    def _entity(self, kind: type[E], command: str) -> E:
        if not isinstance(self.entity, kind):
            raise BadRequest(f"{command}: not a command of a {self.config.role} agent")
        return self.entity

    def _limited(self, call: Callable[[], object]) -> None:
        try:
            call()
        except ValueError as e:
            self.counters["refused-limit"] += 1
            raise BadRequest(str(e)) from None

    def _counters(self) -> dict[str, int]:
        counters = {
            key: 0
            for key in (
                "received",
                "sent",
                "dropped-not-a-peer",
                "malformed",
                "refused-limit",
                "errors",
            )
        }
        counters.update(self.counters)
        if isinstance(self.entity, Lma):
            counters["refused-limit"] += self.entity.refused_full
        return counters


def _interface(route: PolicyRoute | None) -> str | None:
    return None if route is None else route.interface


def _route_of(lma: Lma, prefixes: tuple[IPv6Network, ...]) -> str | None:
    tunnel = lma.prefix_routes.routes.get(prefixes[0]) if prefixes else None
    return None if tunnel is None else tunnel.name


def _text(request: dict[str, Any], key: str) -> str:
    value = request.get(key)
    if not isinstance(value, str) or not value:
        raise BadRequest(f"{request['cmd']}: {key!r} must be a non-empty string")
    return value


def _parsed(request: dict[str, Any], key: str, parse: Callable[[str], T]) -> T:
    text = _text(request, key)
    try:
        return parse(text)
    except ValueError as e:
        raise BadRequest(f"{request['cmd']}: {key}: {e}") from None


def _number(request: dict[str, Any], key: str, default: int) -> int:
    value = request.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadRequest(f"{request['cmd']}: {key!r} must be a non-negative integer")
    return value - value % 4
