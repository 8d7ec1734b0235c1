"""The draft's entities live: real clock, raw-socket signalling, Linux data plane (issue 9).

``lmaho agent ROLE --config FILE.toml`` runs :class:`~lmaho_live.agent.Agent`;
docs/agent.md is the contract of its configuration, control socket and
events. The entities are those of ``lmaho craft`` (:mod:`lmaho_entities`):
this package only gives them a :class:`RealTimeScheduler`, a
:class:`LiveNetwork` and a :class:`LinuxDataPlane` (imported lazily: it
needs pyroute2), and stores the policy store's profiles in a
:class:`PolicyDatabase`.
"""

from .clock import RealTimeScheduler
from .config import AgentConfig, ConfigError, configs_for_scenario
from .events import EventLog
from .policydb import PolicyDatabase, PolicyDatabaseError

__all__ = [
    "AgentConfig",
    "ConfigError",
    "EventLog",
    "PolicyDatabase",
    "PolicyDatabaseError",
    "RealTimeScheduler",
    "configs_for_scenario",
]
