"""An agent's configuration file (TOML), and the four configurations of a craft scenario.

docs/agent.md (Config file) describes every key. :meth:`AgentConfig.load`
reads and checks a file, naming the key at fault; :meth:`AgentConfig.dump`
writes one; :func:`configs_for_scenario` derives the bMAG, PLMA, NLMA and
policy store configurations from an :class:`lmaho_entities.Scenario`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from ipaddress import IPv6Address
from pathlib import Path
from typing import Any

from lmaho_entities import STEP_OF_MESSAGE, Scenario, Variant
from lmaho_wire import option
from lmaho_wire.errors import LmahoError
from lmaho_wire.packet import mac_bytes
from lmaho_wire.schema import (
    ACCESS_TECHNOLOGIES,
    AP_ID_TYPES,
    BA_STATUS,
    HANDOVER_STATUS,
    is_success,
)
from lmaho_wire.tomlfile import read_toml

ROLES = ("bmag", "lma", "policy-store")
TUNNEL_MODES = ("auto", "kernel", "userspace")
#: The section of the file each role reads.
SECTION_OF_ROLE = {"bmag": "bmag", "lma": "lma", "policy-store": "policy_store"}


class ConfigError(LmahoError):
    """An agent configuration that cannot be used, naming the file and key."""


@dataclass(frozen=True)
class AccessPointRoute:
    """Step (c): the New AP an MN reports, and the LMA serving that AP."""

    id_type: str
    identifier: str
    lma: IPv6Address

    def option_data(self) -> bytes:
        """The New AP Identifier option's data, the key the LMA entity looks APs up by."""
        return option("new_ap_id", id_type=self.id_type, identifier=self.identifier).data


@dataclass(frozen=True)
class BmagSettings:
    binding_lifetime: int = 3600
    access_mac: str = "02:00:00:00:0b:00"
    access_technology: str = "IEEE_802_11"
    table_base: int = 1000
    rule_priority: int = 1000
    #: Handovers run at once; more step (a) reports wait their turn. 0: no limit.
    max_handovers: int = 32


@dataclass(frozen=True)
class LmaSettings:
    store: IPv6Address
    upstream: IPv6Address | None = None
    max_lifetime: int = 3600
    refuse_context: str | None = None
    reject_pbu: str | None = None
    access_points: tuple[AccessPointRoute, ...] = ()


@dataclass(frozen=True)
class StoreSettings:
    database: Path
    fail_updates: str | None = None


@dataclass(frozen=True)
class AgentConfig:
    """One agent: who it is, where it listens, whom it trusts, and its role's settings."""

    role: str
    name: str
    address: IPv6Address
    control: Path
    tunnels: str = "auto"
    peers: tuple[IPv6Address, ...] = ()
    max_mobiles: int = 10000
    lose_step: str | None = None
    bmag: BmagSettings | None = None
    lma: LmaSettings | None = None
    policy_store: StoreSettings | None = None

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> AgentConfig:
        data = read_toml(path, "agent configuration", ConfigError)
        try:
            return cls.from_dict(data)
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AgentConfig:
        top = _Table(data, "")
        role = top.text("role")
        if role not in ROLES:
            raise ConfigError(f"role: must be one of {', '.join(ROLES)}, got {role!r}")
        tunnels = top.text("tunnels", "auto")
        if tunnels not in TUNNEL_MODES:
            raise ConfigError(f"tunnels: must be one of {', '.join(TUNNEL_MODES)}")
        lose_step = top.text("lose_step", "") or None
        if lose_step is not None and lose_step not in STEP_OF_MESSAGE.values():
            raise ConfigError("lose_step: must be a signalling step, b to i (or empty)")
        max_mobiles = top.integer("max_mobiles", 10000)
        if max_mobiles < 1:
            raise ConfigError("max_mobiles: must be at least 1")
        sections: dict[str, Any] = {}
        for section in SECTION_OF_ROLE.values():
            table = top.table(section)
            if table is not None:
                sections[section] = _SECTION_READERS[section](table)
        wanted = SECTION_OF_ROLE[role]
        if wanted not in sections:
            if wanted == "bmag":
                sections["bmag"] = BmagSettings()
            else:
                raise ConfigError(f"[{wanted}]: missing (role {role} needs it)")
        config = cls(
            role=role,
            name=top.text("name", role),
            address=top.address("address"),
            control=Path(top.text("control")),
            tunnels=tunnels,
            peers=tuple(top.addresses("peers")),
            max_mobiles=max_mobiles,
            lose_step=lose_step,
            **sections,
        )
        top.done()
        return config

    def dump(self, path: str | os.PathLike[str]) -> None:
        """Write the configuration as a TOML file :meth:`load` reads back."""
        Path(path).write_text(self.to_toml(), encoding="utf-8")

    def to_toml(self) -> str:
        lines = [
            f"role = {_toml(self.role)}",
            f"name = {_toml(self.name)}",
            f"address = {_toml(self.address)}",
            f"control = {_toml(self.control)}",
            f"tunnels = {_toml(self.tunnels)}",
            f"peers = {_toml(list(self.peers))}",
            f"max_mobiles = {self.max_mobiles}",
            f"lose_step = {_toml(self.lose_step or '')}",
        ]
        for section in SECTION_OF_ROLE.values():
            settings = getattr(self, section)
            if settings is None:
                continue
            lines += ["", f"[{section}]"]
            nested: list[str] = []
            for f in dataclasses.fields(settings):
                value = getattr(settings, f.name)
                if f.name == "access_points":
                    for ap in value:
                        nested += ["", f"[[{section}.access_points]]"]
                        nested += [f"{k} = {_toml(v)}" for k, v in dataclasses.asdict(ap).items()]
                else:
                    lines.append(f"{f.name} = {_toml('' if value is None else value)}")
            lines += nested
        return "\n".join(lines) + "\n"

    @property
    def section(self) -> BmagSettings | LmaSettings | StoreSettings:
        """The settings of this agent's role."""
        settings = getattr(self, SECTION_OF_ROLE[self.role])
        assert settings is not None
        return settings  # type: ignore[no-any-return]


def _toml(value: object) -> str:
    if isinstance(value, bool | int):
        return str(value).lower() if isinstance(value, bool) else str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    # A JSON string is a valid TOML basic string.
    return json.dumps(str(value))


#: The default of a key that must be given.
_REQUIRED = object()


class _Table:
    """Typed access to one TOML table, naming ``where`` in errors; unknown keys are errors."""

    def __init__(self, data: dict[str, Any], where: str) -> None:
        self.data = data
        self.where = where
        self.used: set[str] = set()

    def _key(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def _get(self, key: str, default: Any) -> Any:
        self.used.add(key)
        if key in self.data:
            return self.data[key]
        if default is _REQUIRED:
            raise ConfigError(f"{self._key(key)}: missing")
        return default

    def text(self, key: str, default: Any = None) -> str:
        value = self._get(key, _REQUIRED if default is None else default)
        if not isinstance(value, str):
            raise ConfigError(f"{self._key(key)}: must be a string, got {value!r}")
        return value

    def integer(self, key: str, default: int) -> int:
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{self._key(key)}: must be an integer, got {value!r}")
        return value

    def address(self, key: str) -> IPv6Address:
        return _address(self._get(key, _REQUIRED), self._key(key))

    def addresses(self, key: str) -> list[IPv6Address]:
        value = self._get(key, [])
        if not isinstance(value, list):
            raise ConfigError(f"{self._key(key)}: must be a list of IPv6 addresses")
        return [_address(v, f"{self._key(key)}[{i}]") for i, v in enumerate(value)]

    def status(self, key: str, statuses: dict[str, int]) -> str | None:
        name = self.text(key, "") or None
        if name is not None and (name not in statuses or is_success(statuses[name])):
            raise ConfigError(f"{self._key(key)}: {name!r} is not an error Status name")
        return name

    def table(self, key: str) -> _Table | None:
        value = self._get(key, None)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise ConfigError(f"{self._key(key)}: must be a table")
        return _Table(value, self._key(key))

    def tables(self, key: str) -> list[_Table]:
        value = self._get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise ConfigError(f"{self._key(key)}: must be an array of tables ([[{key}]])")
        return [_Table(v, f"{self._key(key)}[{i}]") for i, v in enumerate(value)]

    def done(self) -> None:
        unknown = set(self.data) - self.used
        if unknown:
            raise ConfigError(
                f"{self.where or 'top level'}: unknown key(s) {', '.join(sorted(unknown))}"
            )


def _address(value: Any, where: str) -> IPv6Address:
    try:
        return IPv6Address(value)
    except (ValueError, TypeError):
        raise ConfigError(f"{where}: must be an IPv6 address, got {value!r}") from None


def _read_bmag(t: _Table) -> BmagSettings:
    settings = BmagSettings(
        binding_lifetime=t.integer("binding_lifetime", 3600),
        access_mac=t.text("access_mac", BmagSettings.access_mac),
        access_technology=t.text("access_technology", BmagSettings.access_technology),
        table_base=t.integer("table_base", 1000),
        rule_priority=t.integer("rule_priority", 1000),
        max_handovers=t.integer("max_handovers", BmagSettings.max_handovers),
    )
    t.done()
    try:
        mac_bytes(settings.access_mac)
    except ValueError:
        raise ConfigError(f"bmag.access_mac: {settings.access_mac!r} is not a MAC") from None
    if settings.access_technology not in ACCESS_TECHNOLOGIES:
        raise ConfigError(
            f"bmag.access_technology: must be one of {', '.join(ACCESS_TECHNOLOGIES)}"
        )
    if settings.binding_lifetime % 4 or not 0 < settings.binding_lifetime < 262144:
        raise ConfigError("bmag.binding_lifetime: must be a positive multiple of 4 below 262144")
    if not 0 < settings.table_base < 2**31 or not 0 < settings.rule_priority < 32766:
        raise ConfigError("bmag: table_base and rule_priority must be positive (priority < 32766)")
    if settings.max_handovers < 0:
        raise ConfigError("bmag.max_handovers: must be 0 (no limit) or more")
    return settings


def _read_lma(t: _Table) -> LmaSettings:
    aps: list[AccessPointRoute] = []
    for ap_table in t.tables("access_points"):
        ap = AccessPointRoute(
            ap_table.text("id_type"), ap_table.text("identifier"), ap_table.address("lma")
        )
        ap_table.done()
        if ap.id_type not in AP_ID_TYPES:
            raise ConfigError(f"{ap_table.where}.id_type: must be one of {', '.join(AP_ID_TYPES)}")
        try:
            ap.option_data()
        except ValueError as e:
            raise ConfigError(f"{ap_table.where}.identifier: {e}") from None
        aps.append(ap)
    upstream = t.text("upstream", "")
    settings = LmaSettings(
        store=t.address("store"),
        upstream=_address(upstream, "lma.upstream") if upstream else None,
        max_lifetime=t.integer("max_lifetime", 3600),
        refuse_context=t.status("refuse_context", HANDOVER_STATUS),
        reject_pbu=t.status("reject_pbu", BA_STATUS),
        access_points=tuple(aps),
    )
    t.done()
    if settings.max_lifetime % 4 or settings.max_lifetime <= 0:
        raise ConfigError("lma.max_lifetime: must be a positive multiple of 4")
    return settings


def _read_store(t: _Table) -> StoreSettings:
    settings = StoreSettings(
        database=Path(t.text("database")),
        fail_updates=t.status("fail_updates", HANDOVER_STATUS),
    )
    t.done()
    return settings


_SECTION_READERS = {"bmag": _read_bmag, "lma": _read_lma, "policy_store": _read_store}


# --- the four agents of a scenario ---------------------------------------------------------


def configs_for_scenario(
    scenario: Scenario,
    *,
    runtime_dir: str | os.PathLike[str],
    variant: Variant = Variant.NONE,
    tunnels: str = "auto",
    max_mobiles: int = 10000,
) -> dict[str, AgentConfig]:
    """The bMAG's, PLMA's, NLMA's and policy store's configurations for ``scenario``.

    Keys "bmag", "plma", "nlma", "store". A failure variant's Status goes to
    every LMA (and the store), as in ``lmaho craft``: either LMA may be the
    NLMA of a handover.
    """
    run = Path(runtime_dir)
    failures = scenario.failures
    bmag, plma, nlma, store = (
        scenario.bmag.address,
        scenario.plma.address,
        scenario.nlma.address,
        scenario.store.address,
    )
    lose_step = failures.lost_step if variant is Variant.LOST_MESSAGE else None
    aps = tuple(
        AccessPointRoute(ap.id_type, ap.identifier, scenario.lma(ap.lma).address)
        for ap in scenario.access_points.values()
    )

    def common(role: str, name: str, address: IPv6Address, peers: list[IPv6Address]) -> AgentConfig:
        return AgentConfig(
            role=role,
            name=name,
            address=address,
            control=run / f"{name}.sock",
            tunnels=tunnels,
            peers=tuple(peers),
            max_mobiles=max_mobiles,
            lose_step=lose_step,
        )

    def lma(role: str) -> AgentConfig:
        me = scenario.lma(role)
        other = nlma if role == "plma" else plma
        return dataclasses.replace(
            common("lma", role, me.address, [bmag, other, store]),
            lma=LmaSettings(
                store=store,
                upstream=scenario.cn.address,
                max_lifetime=me.max_lifetime,
                refuse_context=failures.nlma_refuses_status
                if variant is Variant.NLMA_REFUSES
                else None,
                reject_pbu=failures.pba_error_status if variant is Variant.PBA_ERROR else None,
                access_points=aps,
            ),
        )

    return {
        "bmag": dataclasses.replace(
            common("bmag", "bmag", bmag, [plma, nlma]),
            bmag=BmagSettings(
                binding_lifetime=scenario.bmag.binding_lifetime,
                access_mac=scenario.bmag.access_mac,
                access_technology=scenario.mobiles.access_technology,
            ),
        ),
        "plma": lma("plma"),
        "nlma": lma("nlma"),
        "store": dataclasses.replace(
            common("policy-store", "store", store, [plma, nlma]),
            policy_store=StoreSettings(
                database=run / "store.sqlite",
                fail_updates=failures.policy_update_status
                if variant is Variant.POLICY_UPDATE_FAILS
                else None,
            ),
        ),
    }


__all__ = [
    "ROLES",
    "TUNNEL_MODES",
    "AccessPointRoute",
    "AgentConfig",
    "BmagSettings",
    "ConfigError",
    "LmaSettings",
    "StoreSettings",
    "configs_for_scenario",
]
