"""The data plane an entity programs: Appendix A's tunnels and routes as a runtime's state.

The entities decide every route (an LMA's ``_route``/``_unroute``, the
bMAG's ``_point_route``); they keep their own tables for the simulated run,
where they forward packets themselves, and tell a :class:`DataPlane` about
every change. The crafting run uses :data:`NO_DATA_PLANE`; a live runtime
(``lmaho_live``) turns the same calls into tunnel interfaces, rules and
routes of the operating system.
"""

from __future__ import annotations

from typing import Protocol

from .packets import IPv6Network
from .state import PolicyRoute, TunnelInterface


class DataPlane(Protocol):
    """What an entity's routing decisions become outside the simulated run."""

    def add_tunnel(self, tunnel: TunnelInterface) -> None:
        """A tunnel interface (a new row of the tunnel interface table) is needed from now on."""

    def route_prefix(self, prefix: IPv6Network, tunnel: TunnelInterface) -> None:
        """An LMA routes ``prefix`` into ``tunnel`` (replacing any earlier route of it)."""

    def unroute_prefix(self, prefix: IPv6Network) -> None:
        """An LMA no longer routes ``prefix``."""

    def point_policy_route(self, mn_id: str, route: PolicyRoute) -> None:
        """The bMAG's policy route of MN ``mn_id`` now points at ``route.interface``."""

    def remove_policy_route(self, mn_id: str, route: PolicyRoute) -> None:
        """The bMAG forgot MN ``mn_id``: its policy route goes."""


class NoDataPlane:
    """The simulated run's data plane: the entities' own tables are all there is."""

    def add_tunnel(self, tunnel: TunnelInterface) -> None:
        pass

    def route_prefix(self, prefix: IPv6Network, tunnel: TunnelInterface) -> None:
        pass

    def unroute_prefix(self, prefix: IPv6Network) -> None:
        pass

    def point_policy_route(self, mn_id: str, route: PolicyRoute) -> None:
        pass

    def remove_policy_route(self, mn_id: str, route: PolicyRoute) -> None:
        pass


NO_DATA_PLANE: DataPlane = NoDataPlane()
