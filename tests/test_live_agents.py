"""Live agents in network namespaces: a real handover, its routes, rules and data (needs root)."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lmaho_entities import DEFAULT_SCENARIO, PolicyProfile, Variant, mobile_spec
from lmaho_live.config import AgentConfig, configs_for_scenario
from lmaho_live.policydb import PolicyDatabase
from support.cli import LMAHO_COMMAND
from support.livenet import Agent as LiveAgent
from support.livenet import Lab, ping

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
MAC = ":".join(f"{b:02x}" for b in MN.mac)


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


def start_agents(
    lab: Lab,
    tmp_path: Path,
    variant: Variant = Variant.NONE,
    register: str = "seed",
    **changes: Any,
) -> dict[str, LiveAgent]:
    """Store, PLMA, NLMA and bMAG agents; the MN registered at the PLMA through the bMAG.

    ``register``: "seed" sets the registered state at both ends by control commands,
    "pbu" has the bMAG register the MN by PBU/PBA (RFC 5213) and waits for its PBA.
    """
    configs = configs_for_scenario(SCENARIO, runtime_dir=tmp_path, variant=variant)
    configs = {k: dataclasses.replace(c, **changes.get(k, {})) for k, c in configs.items()}
    with PolicyDatabase(tmp_path / "store.sqlite") as db:
        db.put(PolicyProfile(MN.identifier, SCENARIO.plma.address, None, (MN.prefix,)))
    agents = lab.start_all(
        {
            "nlma": [configs["store"], configs["nlma"]],
            "plma": [configs["plma"]],
            "bmag": [configs["bmag"]],
        }
    )
    if register == "seed":
        reply = agents["plma"].ask(
            cmd="register", mn_id=MN.identifier, prefix=str(MN.prefix), mag=BMAG, mac=MAC
        )
        assert reply == {"ok": True}
    reply = agents["bmag"].ask(
        cmd="attach",
        mn_id=MN.identifier,
        mac=MAC,
        prefix=str(MN.prefix),
        address=MN_ADDRESS,
        interface="acc1",
        lma=PLMA,
        register=register,
    )
    assert reply == {"ok": True}
    if register == "pbu":
        registered = agents["bmag"].wait_for("registered")
        assert (registered["outcome"], registered["tunnel"]) == ("completed", "Tunnel0")
    return agents


def handover(bmag: LiveAgent, ap: dict[str, str], timeout: float = 15) -> dict[str, Any]:
    """Step (a) at the bMAG; its handover-done event."""
    reply = bmag.ask(cmd="handover", mn_id=MN.identifier, new_ap=ap)
    assert reply["ok"], reply
    return bmag.wait_for("handover-done", timeout=timeout)


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

    done = handover(bmag, AP_OF_NLMA)
    assert done["completed"] and done["tunnel"] == "Tunnel1", done
    assert 0 < done["latency"] < 1.0

    # Every message of (b)-(i) went over the wire, each answered once.
    last = {"bmag": "PBU", "plma": "LMA_HO_Resp", "nlma": "PBA", "store": "Update_Ack"}
    sent = {name: agents[name].sent(message) for name, message in last.items()}
    assert sent["bmag"] == ["LMA_HO_Req", "PBU"]
    assert sent["plma"] == ["LMA_HO_Init", "LMA_HO_Resp"]
    assert sent["nlma"] == ["LMA_HAck", "Update", "PBA"]
    assert sent["store"] == ["Update_Ack"]

    # After: the rule points at the NLMA's table; the PLMA tunnels the prefix to the NLMA.
    assert lab.rules("bmag") == [(prefix, 1001, 1000)]
    assert lab.routes("bmag", 1001) == {"default": "Tunnel1"}
    assert lab.routes("plma")[prefix] == "Tunnel1"
    assert lab.routes("nlma")[prefix] == "Tunnel1"
    status = plma.ask(cmd="status")
    assert [t["remote"] for t in status["tunnels"]] == [BMAG, NLMA]
    assert status["bindings"][0]["state"] == "handed over"
    status = nlma.ask(cmd="status")
    assert status["bindings"][0]["state"] == "registered"
    assert status["bindings"][0]["route"] == "Tunnel1"
    profiles = store.ask(cmd="status")["profiles"]
    assert (profiles[0]["lmaa"], profiles[0]["plmaa"]) == (NLMA, PLMA)
    assert ping(lab, "mn", CN) == 5
    tunnels = {t["name"]: t for t in bmag.ask(cmd="status")["tunnels"]}
    assert tunnels["Tunnel1"]["packets_out"] >= 5 and tunnels["Tunnel1"]["packets_in"] >= 5

    # Forgetting the MN takes its rule and its on-link route away, the tunnels stay.
    assert bmag.ask(cmd="forget", mn_id=MN.identifier) == {"ok": True}
    assert lab.rules("bmag") == [] and prefix not in lab.routes("bmag")
    assert bmag.ask(cmd="status")["mobiles"] == []

    # Every agent removes what it added and exits 0.
    for agent in agents.values():
        assert agent.stop() == 0
    for node in ("bmag", "plma", "nlma"):
        assert not {name for name in lab.links(node) if name.startswith("Tunnel")}
        assert prefix not in lab.routes(node)
    assert lab.rules("bmag") == []
    assert lab.routes("bmag", 1000) == {} and lab.routes("bmag", 1001) == {}


def test_an_mn_registered_by_pbu_is_handed_over(lab: Lab, tmp_path: Path) -> None:
    """No out-of-band state at the PLMA: the bMAG's PBU makes its binding (RFC 5213 5.3)."""
    build_network(lab)
    agents = start_agents(lab, tmp_path, register="pbu")
    bmag, plma = agents["bmag"], agents["plma"]
    prefix = str(MN.prefix)
    assert bmag.sent() == ["PBU"] and plma.sent("PBA") == ["PBA"]
    binding = plma.ask(cmd="status")["bindings"][0]
    assert (binding["state"], binding["proxy_coa"], binding["route"]) == (
        "registered",
        BMAG,
        "Tunnel0",
    )
    assert binding["lifetime"] == 3600
    assert lab.rules("bmag") == [(prefix, 1000, 1000)]
    assert lab.routes("plma")[prefix] == "Tunnel0"
    assert ping(lab, "mn", CN) == 5

    done = handover(bmag, AP_OF_NLMA)
    assert done["completed"] and done["tunnel"] == "Tunnel1", done
    assert bmag.sent("PBU") == ["PBU", "LMA_HO_Req", "PBU"]
    assert lab.rules("bmag") == [(prefix, 1001, 1000)]
    assert lab.routes("plma")[prefix] == "Tunnel1"
    assert ping(lab, "mn", CN) == 5

    # The MN leaves: a PBU with lifetime 0 ends its binding at the NLMA (RFC 5213 6.9.1.2).
    assert bmag.ask(cmd="deregister", mn_id=MN.identifier)["ok"]
    gone = bmag.wait_for("registered", where=lambda e: e["lifetime"] == 0)
    assert (gone["lma"], gone["outcome"], gone["tunnel"]) == (NLMA, "completed", None)
    assert lab.rules("bmag") == []
    assert agents["nlma"].ask(cmd="status")["bindings"] == []
    assert not bmag.ask(cmd="deregister", mn_id=MN.identifier)["ok"]
    for agent in agents.values():
        assert agent.stop() == 0


def test_back_and_forth_across_a_policy_store_restart(lab: Lab, tmp_path: Path) -> None:
    build_network(lab)
    agents = start_agents(lab, tmp_path)
    bmag, store = agents["bmag"], agents["store"]
    assert handover(bmag, AP_OF_NLMA)["tunnel"] == "Tunnel1"
    # The store goes down and comes back: the profile the Update changed is on disk.
    assert store.stop() == 0
    store = lab.start("nlma", store.config)
    profile = store.ask(cmd="status")["profiles"][0]
    assert (profile["lmaa"], profile["plmaa"]) == (NLMA, PLMA)
    # Back to the anchor: the NLMA is the PLMA of this handover, the store updates again.
    done = handover(bmag, AP_OF_PLMA)
    assert done["completed"] and done["handover"] == 2 and done["tunnel"] == "Tunnel0", done
    profile = store.ask(cmd="status")["profiles"][0]
    assert (profile["lmaa"], profile["plmaa"]) == (PLMA, NLMA)
    assert lab.rules("bmag") == [(str(MN.prefix), 1000, 1000)]
    assert lab.routes("plma")[str(MN.prefix)] == "Tunnel0"
    assert lab.routes("nlma")[str(MN.prefix)] == "Tunnel0"  # the NLMA's tunnel to the PLMA
    assert ping(lab, "mn", CN) == 5
    # Ctrl-C cleans up as SIGTERM does.
    bmag.process.send_signal(signal.SIGINT)
    assert bmag.process.wait(timeout=10) == 0
    assert lab.rules("bmag") == [] and not any(n.startswith("Tunnel") for n in lab.links("bmag"))


@pytest.mark.parametrize(
    ("variant", "outcome", "tunnel", "echoes"),
    [
        (Variant.NLMA_REFUSES, "refused", "Tunnel0", 5),
        # The NLMA fails the registration after the PLMA moved the prefix into the
        # PLMA-NLMA tunnel at (d); the bMAG re-registers the MN with the PLMA, which
        # routes the prefix to the bMAG again (docs/wire-format.md 8): no echo lost.
        (Variant.PBA_ERROR, "rejected", "Tunnel0", 5),
        (Variant.POLICY_UPDATE_FAILS, "rejected", "Tunnel0", 5),
        (Variant.LOST_MESSAGE, "completed", "Tunnel1", 5),
    ],
    ids=lambda v: v.value if isinstance(v, Variant) else None,
)
def test_each_variant_ends_as_the_failure_it_is(
    lab: Lab, tmp_path: Path, variant: Variant, outcome: str, tunnel: str, echoes: int
) -> None:
    build_network(lab)
    agents = start_agents(lab, tmp_path, variant)
    done = handover(agents["bmag"], AP_OF_NLMA)
    assert (done["outcome"], done["tunnel"]) == (outcome, tunnel), done
    if outcome == "rejected":
        recovered = agents["bmag"].wait_for("registered")
        assert (recovered["lma"], recovered["outcome"]) == (PLMA, "completed"), recovered
        binding = agents["plma"].ask(cmd="status")["bindings"][0]
        assert (binding["state"], binding["route"]) == ("registered", "Tunnel0")
        # The PLMA names itself in the profile again (pba-error had the NLMA there).
        agents["plma"].wait_for("received", where=lambda e: e["message"] == "Update_Ack")
        assert "Update" in agents["plma"].sent()
        profile = agents["store"].ask(cmd="status")["profiles"][0]
        assert profile["lmaa"] == PLMA, profile
    expected_table = 1000 if tunnel == "Tunnel0" else 1001
    assert lab.rules("bmag") == [(str(MN.prefix), expected_table, 1000)]
    if variant is Variant.LOST_MESSAGE:
        # The first LMA_HO_Init was lost on purpose; its retransmission came 1 s later.
        assert agents["plma"].sent("LMA_HO_Resp").count("LMA_HO_Init") == 1
        lost = [e for e in agents["plma"].events if e["event"] == "lost"]
        assert [e["message"] for e in lost] == ["LMA_HO_Init"]
        assert done["latency"] >= 1.0
    assert ping(lab, "mn", CN) == echoes


def test_nlma_gone_the_bmag_gives_up_and_the_mn_stays_with_the_plma(
    lab: Lab, tmp_path: Path
) -> None:
    build_network(lab)
    agents = start_agents(lab, tmp_path)
    assert agents["nlma"].stop() == 0
    done = handover(agents["bmag"], AP_OF_NLMA, timeout=25)
    # 1 + 2 + 4 + 8 s of retransmissions (docs/wire-format.md 9), then abandoned.
    assert (done["outcome"], done["step"], done["tunnel"]) == ("abandoned", "b", "Tunnel0")
    assert agents["bmag"].sent().count("LMA_HO_Req") == 4
    assert ping(lab, "mn", CN) == 5


MUTATE = """
import random, socket, sys
from lmaho_wire import build, option
src, dst, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
valid = build("LMA_HO_Req", sequence=7, lifetime=3600, src=src, dst=dst, options=[
    option("mn_identifier", subtype="NAI", identifier="mn1@lmaho.example"),
    option("home_network_prefix", prefix_length=64, prefix="2001:db8:100::"),
    option("new_ap_id", id_type="BSSID", identifier="02:00:00:aa:00:02")])
rng = random.Random(9)
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, 135)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_CHECKSUM, 4)
s.bind((src, 0))
for _ in range(count):
    data = bytearray(valid)
    for _ in range(rng.randint(1, 6)):
        data[rng.randrange(len(data))] = rng.randrange(256)
    if rng.random() < 0.3:
        data = data[: rng.randrange(6, len(data))]  # the kernel needs the checksum field
    s.sendto(bytes(data), (dst, 0))
"""


def test_hostile_signalling_is_counted_and_dropped(lab: Lab, tmp_path: Path) -> None:
    build_network(lab)
    agents = start_agents(lab, tmp_path, plma={"max_mobiles": 2})
    plma = agents["plma"]
    # From the CN: not a peer of the PLMA.
    code = MUTATE.replace("sys.argv[1], sys.argv[2], int(sys.argv[3])", f"{CN!r}, {PLMA!r}, 50")
    lab.run_in("cn", code)
    # 10,000 mutated LMA_HO_Reqs at each agent, from the address of one of its peers,
    # while a handover runs: the bMAG's at the PLMA and the NLMA, the PLMA's at the bMAG
    # and the policy store.
    reply = agents["bmag"].ask(cmd="handover", mn_id=MN.identifier, new_ap=AP_OF_NLMA)
    assert reply["ok"]
    for sender, src, dst in (
        ("bmag", BMAG, PLMA),
        ("bmag", BMAG, NLMA),
        ("plma", PLMA, BMAG),
        ("plma", PLMA, STORE),
    ):
        flood = MUTATE.replace(
            "sys.argv[1], sys.argv[2], int(sys.argv[3])", f"{src!r}, {dst!r}, 10_000"
        )
        lab.run_in(sender, flood, timeout=60)
    done = agents["bmag"].wait_for("handover-done")
    assert done["completed"], done
    counters = plma.ask(cmd="status")["counters"]
    assert counters["dropped-not-a-peer"] == 50
    # The kernel's own Mobility Header filter (Header Len, Payload Proto, checksum) drops
    # most mutants; what passes it is decoded and answered, or counted as malformed.
    assert counters["malformed"] > 0 and counters["received"] > 0
    for agent in agents.values():
        assert agent.ask(cmd="status")["counters"]["errors"] == 0
    # The per-MN limit: one more MN fits, the next is refused.
    assert plma.ask(cmd="register", mn_id="mn2@x", prefix="2001:db8:101::/64", mag=BMAG)["ok"]
    refused = plma.ask(cmd="register", mn_id="mn3@x", prefix="2001:db8:102::/64", mag=BMAG)
    assert not refused["ok"] and "binding cache full" in refused["error"]
    assert plma.ask(cmd="status")["counters"]["refused-limit"] == 1
    # A missing access interface is named.
    missing = agents["bmag"].ask(
        cmd="attach",
        mn_id="mn2@x",
        mac="02:00:00:01:00:02",
        prefix="2001:db8:101::/64",
        address="2001:db8:101::2",
        interface="nope0",
        lma=PLMA,
    )
    assert missing == {"ok": False, "error": "attach: no interface named 'nope0' in this namespace"}
    assert all(agent.process.poll() is None for agent in agents.values())


def run_plma_agent(
    lab: Lab, config: AgentConfig, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    """The PLMA's agent with ``config``, in the PLMA's namespace, to its exit."""
    path = tmp_path / "plma.toml"
    config.dump(path)
    return subprocess.run(
        [*LMAHO_COMMAND, "agent", "lma", "--config", str(path)],
        preexec_fn=lab.enter("plma"),
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_an_agent_without_its_address_exits_2_naming_it(lab: Lab, tmp_path: Path) -> None:
    lab.add_node("plma")  # no address configured
    config = configs_for_scenario(SCENARIO, runtime_dir=tmp_path)["plma"]
    run = run_plma_agent(lab, config, tmp_path)
    assert run.returncode == 2
    assert run.stderr == (
        f"lmaho: error: agent plma: address {PLMA} is not configured in this network namespace\n"
    )
    assert not config.control.exists()


def test_kernel_tunnels_asked_of_a_kernel_without_ip6tnl_exit_2(lab: Lab, tmp_path: Path) -> None:
    lab.add_node("plma", PLMA)
    probe = "from pyroute2 import IPRoute\nfrom lmaho_live.dataplane import kernel_has_ip6tnl\n"
    if lab.run_in("plma", probe + "print(kernel_has_ip6tnl(IPRoute()))").strip() == "True":
        pytest.skip("this kernel has ip6tnl")
    config = dataclasses.replace(
        configs_for_scenario(SCENARIO, runtime_dir=tmp_path)["plma"], tunnels="kernel"
    )
    run = run_plma_agent(lab, config, tmp_path)
    assert (run.returncode, run.stderr) == (
        2,
        "lmaho: error: --tunnels kernel: this kernel makes no ip6tnl interfaces\n",
    )
    assert not any(name.startswith("Tunnel") for name in lab.links("plma"))
