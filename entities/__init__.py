"""Protocol entities of draft-lim-netext-lma-handover-01 as state machines on a virtual clock.

The draft's entities (:class:`BoundaryMag`, :class:`Lma` in the PLMA and
NLMA roles, :class:`PolicyStore`, :class:`MobileNode`,
:class:`CorrespondentNode`) exchange decoded packets (:class:`Packet`,
:class:`Signal`) through a :class:`Network`, with timers on a
:class:`Scheduler`. :class:`SimulatedNetwork` is the in-process network of
``lmaho craft``; :class:`ReferenceNetwork` and :class:`Campaign` build the
draft's Figure 1 from a :class:`Scenario` and move MNs through it::

    import random
    from lmaho_entities import (Campaign, ReferenceNetwork, Scheduler, SimulatedNetwork,
                                DEFAULT_SCENARIO)

    scheduler = Scheduler(DEFAULT_SCENARIO.timing.epoch)
    network = SimulatedNetwork(scheduler, sink=print)
    world = ReferenceNetwork(DEFAULT_SCENARIO, scheduler, network)
    Campaign(world, mobiles=1, handovers=1, rng=random.Random(0)).run()
"""

from .clock import DEFAULT_EPOCH, Scheduler, Timer, microseconds, seconds
from .context import MobileContext
from .dataplane import NO_DATA_PLANE, DataPlane, NoDataPlane
from .hosts import CorrespondentNode, DataProtocol, MobileNode
from .lma import Lma
from .mag import BoundaryMag, HandoverResult, Outcome, RegistrationResult
from .network import (
    INITIAL_TIMEOUT_US,
    MAX_RETRANSMISSIONS,
    ApReport,
    Network,
    Node,
    Retransmission,
)
from .packets import (
    STEP_OF_MESSAGE,
    Datagram,
    Packet,
    Signal,
    Trace,
    decode_packet,
    encode_packet,
)
from .policy_store import PolicyStore
from .scenario import DEFAULT_SCENARIO, Scenario, ScenarioError, load_scenario, mobile_spec
from .simnet import Hop, SimulatedNetwork, Transmission
from .state import (
    BindingCacheEntry,
    BindingState,
    BindingUpdateListEntry,
    PolicyProfile,
    PolicyRoute,
    TunnelInterface,
)
from .world import Campaign, CampaignResult, ReferenceNetwork, Variant, lost_message_rule

__all__ = [
    "DEFAULT_EPOCH",
    "DEFAULT_SCENARIO",
    "INITIAL_TIMEOUT_US",
    "MAX_RETRANSMISSIONS",
    "NO_DATA_PLANE",
    "STEP_OF_MESSAGE",
    "ApReport",
    "BindingCacheEntry",
    "BindingState",
    "BindingUpdateListEntry",
    "BoundaryMag",
    "Campaign",
    "CampaignResult",
    "CorrespondentNode",
    "DataPlane",
    "DataProtocol",
    "Datagram",
    "HandoverResult",
    "Hop",
    "Lma",
    "MobileContext",
    "MobileNode",
    "Network",
    "NoDataPlane",
    "Node",
    "Outcome",
    "Packet",
    "PolicyProfile",
    "PolicyRoute",
    "PolicyStore",
    "ReferenceNetwork",
    "RegistrationResult",
    "Retransmission",
    "Scenario",
    "ScenarioError",
    "Scheduler",
    "Signal",
    "SimulatedNetwork",
    "Timer",
    "Trace",
    "Transmission",
    "TunnelInterface",
    "Variant",
    "decode_packet",
    "encode_packet",
    "load_scenario",
    "lost_message_rule",
    "microseconds",
    "mobile_spec",
    "seconds",
]
