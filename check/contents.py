"""What each step's message carries: the MUST and MAY columns of docs/wire-format.md section 7.

Option keys are the schema's (:mod:`lmaho_wire.schema`); flags are the
letters of a message's Flags field. The procedure itself (who sends which
message to whom) is :mod:`lmaho_procedure`'s.
"""

from __future__ import annotations

from dataclasses import dataclass

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
class Contents:
    """The options a step's message must and may carry, and the flags it must set."""

    must: tuple[str, ...]
    may: tuple[str, ...] = ()
    must_on_success: tuple[str, ...] = ()
    # Flags that MUST be set; on a response, only when its status is a success.
    flags: tuple[str, ...] = ()


#: Step letter -> what its message carries.
CONTENTS: dict[str, Contents] = {
    "b": Contents((MN_ID, HNP, NEW_AP_ID, TIMESTAMP), (MN_LL_ID, ATT)),
    "c": Contents(
        (MN_ID, HNP, MAG_ADDRESS, TIMESTAMP), (MN_LL_ID, ATT, LLA, NEW_AP_ID), flags=("T",)
    ),
    "d": Contents((MN_ID, HNP), flags=("T",)),
    "e": Contents((MN_ID, HNP), (MN_LL_ID,), (LMA_ADDRESS,)),
    "f": Contents((MN_ID, HNP, HANDOFF, ATT, TIMESTAMP), (MN_LL_ID,), flags=("A", "H")),
    "g": Contents((MN_ID, LMA_ADDRESS, PLMA_ADDRESS), (HNP,)),
    "h": Contents((MN_ID,), (LMA_ADDRESS,)),
    "i": Contents((MN_ID, HNP, HANDOFF, ATT, TIMESTAMP), (MN_LL_ID,)),
}
# RFC 5213 lets a PBU and a PBA carry more options than section 7 lists.
PROXY_MESSAGES = frozenset({"PBU", "PBA"})
