"""Live agents in network namespaces: a real handover, its routes, rules and data (needs root)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from livenet import Lab, ping

from lmaho_entities import DEFAULT_SCENARIO, PolicyProfile, mobile_spec
from lmaho_live.config import configs_for_scenario
from lmaho_live.policydb import PolicyDatabase

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: makes network namespaces"),
]

SCENARIO = DEFAULT_SCENARIO
MN = mobile_spec(SCENARIO.mobiles, 1)
MN_ADDRESS = str(MN.address)
PLMA, NLMA = str(SCENARIO.plma.address), str(SCENARIO.nlma.address)
BMAG, STORE, CN = str(SCENARIO.bmag.address), str(SCENARIO.store.address), str(SCENARIO.cn.address)
AP_OF_NLMA = {"id_type": "BSSID", "identifier": "02:00:00:aa:00:02"}
AP_OF_PLMA = {"id_type": "BSSID", "identifier": "02:00:00:aa:00:01"}


def build_network(lab: Lab) -> None:
    """Figure 1 in five namespaces (the store shares the NLMA's), routes to every peer."""
    lab.add_node("mn")
    lab.add_node("bmag", BMAG, forwarding=True)
    lab.add_node("plma", PLMA, forwarding=True)
    lab.add_node("nlma", NLMA, STORE, forwarding=True)
    lab.add_node("cn", CN)
    lab.link("mn", "eth0", f"{MN_ADDRESS}/64", "bmag", "acc1", "fe80::1/64")
    lab.link("bmag", "to-plma", "fd00:1::1/64", "plma", "to-bmag", "fd00:1::2/64")
    lab.link("bmag", "to-nlma", "fd00:2::1/64", "nlma", "to-bmag", "fd00:2::2/64")
    lab.link("plma", "to-nlma", "fd00:3::1/64", "nlma", "to-plma", "fd00:3::2/64")
    lab.link("plma", "to-cn", "fd00:4::1/64", "cn", "to-plma", "fd00:4::2/64")
    lab.route("mn", "default", "fe80::1", "eth0")
    lab.route("bmag", f"{PLMA}/128", "fd00:1::2")
    lab.route("bmag", f"{NLMA}/128", "fd00:2::2")
    lab.route("plma", f"{BMAG}/128", "fd00:1::1")
    lab.route("plma", f"{NLMA}/128", "fd00:3::2")
    lab.route("plma", f"{STORE}/128", "fd00:3::2")
    lab.route("plma", f"{CN}/128", "fd00:4::2")
    lab.route("nlma", f"{BMAG}/128", "fd00:2::1")
    lab.route("nlma", f"{PLMA}/128", "fd00:3::1")
    lab.route("nlma", f"{CN}/128", "fd00:3::1")
    lab.route("cn", "default", "fd00:4::1")


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    lab = Lab(tmp_path)
    try:
        yield lab
    finally:
        lab.close()
        left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert lab.prefix not in left


def start_agents(lab: Lab, tmp_path: Path, **changes: object) -> dict[str, object]:
    configs = configs_for_scenario(SCENARIO, runtime_dir=tmp_path)
    configs = {k: dataclasses.replace(c, **changes) for k, c in configs.items()}  # type: ignore[arg-type]
    with PolicyDatabase(tmp_path / "store.sqlite") as db:
        db.put(PolicyProfile(MN.identifier, SCENARIO.plma.address, None, (MN.prefix,)))
    agents = {
        "store": lab.start("nlma", configs["store"]),
        "plma": lab.start("plma", configs["plma"]),
        "nlma": lab.start("nlma", configs["nlma"]),
        "bmag": lab.start("bmag", configs["bmag"]),
    }
    mac = ":".join(f"{b:02x}" for b in MN.mac)
    reply = agents["plma"].ask(  # type: ignore[attr-defined]
        cmd="register", mn_id=MN.identifier, prefix=str(MN.prefix), mag=BMAG, mac=mac
    )
    assert reply == {"ok": True}
    reply = agents["bmag"].ask(  # type: ignore[attr-defined]
        cmd="attach",
        mn_id=MN.identifier,
        mac=mac,
        prefix=str(MN.prefix),
        address=MN_ADDRESS,
        interface="acc1",
        lma=PLMA,
    )
    assert reply == {"ok": True}
    return agents


def test_handover_moves_routes_rules_and_traffic(lab: Lab, tmp_path: Path) -> None:
    build_network(lab)
    agents = start_agents(lab, tmp_path)
    bmag, plma, nlma, store = (agents[k] for k in ("bmag", "plma", "nlma", "store"))
    prefix = str(MN.prefix)

    # Before: Tunnel0 towards the PLMA carries the MN's traffic both ways.
    assert lab.rules("bmag") == [(prefix, 1000, 1000)]
    assert lab.routes("bmag", 1000) == {"default": "Tunnel0"}
    assert lab.routes("plma")[prefix] == "Tunnel0"
    assert ping(lab, "mn", CN) == 5

    assert bmag.ask(cmd="handover", mn_id=MN.identifier, new_ap=AP_OF_NLMA) == {  # type: ignore[attr-defined]
        "ok": True,
        "handover": 1,
    }
    done = bmag.wait_for("handover-done")  # type: ignore[attr-defined]
    assert done["completed"] and done["tunnel"] == "Tunnel1", done
    assert 0 < done["latency"] < 1.0

    # Every message of (b)-(i) went over the wire, each answered once.
    sent = {name: agent.sent() for name, agent in agents.items()}  # type: ignore[attr-defined]
    assert sent["bmag"] == ["LMA_HO_Req", "PBU"]
    assert sent["plma"] == ["LMA_HO_Init", "LMA_HO_Resp"]
    assert sent["nlma"] == ["LMA_HAck", "Update", "PBA"]
    assert sent["store"] == ["Update_Ack"]

    # After: the rule points at the NLMA's table; the PLMA tunnels the prefix to the NLMA.
    assert lab.rules("bmag") == [(prefix, 1001, 1000)]
    assert lab.routes("bmag", 1001) == {"default": "Tunnel1"}
    assert lab.routes("plma")[prefix] == "Tunnel1"
    assert lab.routes("nlma")[prefix] == "Tunnel1"
    status = plma.ask(cmd="status")  # type: ignore[attr-defined]
    assert [t["remote"] for t in status["tunnels"]] == [BMAG, NLMA]
    assert status["bindings"][0]["state"] == "handed over"
    status = nlma.ask(cmd="status")  # type: ignore[attr-defined]
    assert status["bindings"][0]["state"] == "registered"
    assert status["bindings"][0]["route"] == "Tunnel1"
    profiles = store.ask(cmd="status")["profiles"]  # type: ignore[attr-defined]
    assert (profiles[0]["lmaa"], profiles[0]["plmaa"]) == (NLMA, PLMA)
    assert ping(lab, "mn", CN) == 5
    tunnels = {t["name"]: t for t in bmag.ask(cmd="status")["tunnels"]}  # type: ignore[attr-defined]
    assert tunnels["Tunnel1"]["packets_out"] >= 5 and tunnels["Tunnel1"]["packets_in"] >= 5

    # Every agent removes what it added and exits 0.
    for agent in agents.values():
        assert agent.stop() == 0  # type: ignore[attr-defined]
    for node in ("bmag", "plma", "nlma"):
        assert not {name for name in lab.links(node) if name.startswith("Tunnel")}
        assert prefix not in lab.routes(node)
    assert lab.rules("bmag") == []
    assert lab.routes("bmag", 1000) == {} and lab.routes("bmag", 1001) == {}
