"""The overlay planner with plain objects: no root, no kernel.

``simulate`` plays a plan against a state the way the kernel does (a deleted bridge frees its
ports and takes its addresses, neighbours and sysctls with it), so properties can say: after
executing a plan, the host holds what the views want, and planning again yields nothing.
"""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from swarmlet.net.names import mac_for
from swarmlet.net.overlay import (
    IP_FORWARD,
    OVERLAY_MTU,
    ZERO_MAC,
    AddAddress,
    AddFdb,
    CreateLink,
    DeleteAddress,
    DeleteFdb,
    DeleteLink,
    DeleteNeighbour,
    HostNetState,
    Link,
    Op,
    SetLink,
    SetNeighbour,
    SetSysctl,
    desired_state,
    plan_host,
    rp_filter_key,
)
from swarmlet.protocol import NetworkView, Peer

HOST = "192.168.254.11"


def simulate(state: HostNetState, ops: list[Op]) -> HostNetState:
    links = dict(state.links)
    addresses = {k: set(v) for k, v in state.addresses.items()}
    fdb = {k: set(v) for k, v in state.fdb.items()}
    neighbours = {k: dict(v) for k, v in state.neighbours.items()}
    sysctls = dict(state.sysctls)
    for op in ops:
        match op:
            case CreateLink(link=link):
                assert link.name not in links, op
                links[link.name] = replace(link, up=False, master=None)
                addresses[link.name] = set()
                if link.kind == "vxlan":
                    fdb[link.name] = set()
                else:
                    neighbours[link.name] = {}
            case DeleteLink(name=name):
                assert name in links, op
                del links[name]
                for table in (addresses, fdb, neighbours):
                    table.pop(name, None)
                sysctls.pop(rp_filter_key(name), None)
                for other, link in links.items():
                    if link.master == name:
                        links[other] = replace(link, master=None)
            case SetLink(name=name):
                link = links[name]
                if op.master is not None:
                    assert op.master in links, op
                links[name] = replace(
                    link,
                    mtu=op.mtu if op.mtu is not None else link.mtu,
                    mac=op.mac if op.mac is not None else link.mac,
                    master=op.master if op.master is not None else link.master,
                    up=op.up if op.up is not None else link.up,
                )
            case AddAddress(link=name, cidr=cidr):
                addresses[name].add(cidr)
            case DeleteAddress(link=name, cidr=cidr):
                addresses[name].remove(cidr)
            case AddFdb(link=name, mac=mac, dst=dst):
                assert links[name].up, "entries on a VXLAN device that is down"
                fdb[name].add((mac, dst))
            case DeleteFdb(link=name, mac=mac, dst=dst):
                fdb[name].remove((mac, dst))
            case SetNeighbour(link=name, ip=ip, mac=mac):
                assert links[name].up, "neighbours on a bridge that is down"
                neighbours[name][ip] = mac
            case DeleteNeighbour(link=name, ip=ip):
                del neighbours[name][ip]
            case SetSysctl(key=key, value=value):
                sysctls[key] = value
    return HostNetState(
        links,
        {k: frozenset(v) for k, v in addresses.items()},
        {k: frozenset(v) for k, v in fdb.items()},
        neighbours,
        sysctls,
    )


def peer(ip: str, vtep: str) -> Peer:
    return Peer(ip=ip, mac=mac_for(ip), vtep=vtep)


def view(vni: int = 4097, local: str = "10.0.1.2/24", peers: list[Peer] | None = None):
    return NetworkView(
        id=f"net{vni}",
        name=f"net{vni}",
        vni=vni,
        subnet="10.0.1.0/24",
        local_address=local,
        peers=peers or [],
    )


def converged(views: list[NetworkView], state: HostNetState) -> HostNetState:
    done = simulate(state, plan_host(views, HOST, state))
    assert plan_host(views, HOST, done) == []
    return done


def test_a_network_on_a_bare_host():
    peers = [peer("10.0.1.3", "192.168.254.12"), peer("10.0.1.6", "192.168.254.12")]
    ops = plan_host([view(peers=peers)], HOST, HostNetState())
    assert ops == [
        CreateLink(Link("swlbr4097", "bridge", mac="02:42:0a:00:01:02")),
        SetLink("swlbr4097", up=True),
        AddAddress("swlbr4097", "10.0.1.2/24"),
        SetNeighbour("swlbr4097", "10.0.1.3", "02:42:0a:00:01:03"),
        SetNeighbour("swlbr4097", "10.0.1.6", "02:42:0a:00:01:06"),
        CreateLink(
            Link(
                "swlvx4097",
                "vxlan",
                master="swlbr4097",
                vni=4097,
                local=HOST,
                port=4789,
                learning=False,
            )
        ),
        SetLink("swlvx4097", master="swlbr4097", up=True),
        AddFdb("swlvx4097", ZERO_MAC, "192.168.254.12"),
        AddFdb("swlvx4097", "02:42:0a:00:01:03", "192.168.254.12"),
        AddFdb("swlvx4097", "02:42:0a:00:01:06", "192.168.254.12"),
        SetSysctl(rp_filter_key("swlbr4097"), "2"),
        SetSysctl(IP_FORWARD, "1"),
    ]
    state = simulate(HostNetState(), ops)
    assert state.links["swlbr4097"].mtu == state.links["swlvx4097"].mtu == OVERLAY_MTU
    assert plan_host([view(peers=peers)], HOST, state) == []


def test_one_broadcast_entry_per_distinct_remote_vtep():
    peers = [
        peer("10.0.1.3", "192.168.254.12"),
        peer("10.0.1.4", "192.168.254.12"),
        peer("10.0.1.5", "192.168.254.13"),
        peer("10.0.1.6", "192.168.254.14"),
    ]
    fdb = desired_state([view(peers=peers)], HOST).fdb["swlvx4097"]
    assert sorted(dst for mac, dst in fdb if mac == ZERO_MAC) == [
        "192.168.254.12",
        "192.168.254.13",
        "192.168.254.14",
    ]
    assert len(fdb) == 4 + 3


def test_a_peer_on_this_very_host_is_not_forwarded_anywhere():
    state = desired_state([view(peers=[peer("10.0.1.9", HOST)])], HOST)
    assert state.fdb["swlvx4097"] == frozenset()
    assert state.neighbours["swlbr4097"] == {}


def test_without_an_address_the_bridge_keeps_the_kernels_mac():
    state = desired_state([view(local="")], HOST)
    assert state.links["swlbr4097"].mac is None
    assert state.addresses["swlbr4097"] == frozenset()


def test_no_network_no_change_at_all():
    assert plan_host([], HOST, HostNetState(sysctls={IP_FORWARD: "0"})) == []


def test_a_network_no_longer_viewed_is_removed_with_what_hangs_off_it():
    both = converged([view(4097), view(4098, local="10.0.2.2/24")], HostNetState())
    ops = plan_host([view(4097)], HOST, both)
    assert ops == [DeleteLink("swlvx4098"), DeleteLink("swlbr4098")]
    assert set(simulate(both, ops).links) == {"swlbr4097", "swlvx4097"}


def test_peers_that_come_go_and_move():
    before = [peer("10.0.1.3", "192.168.254.12"), peer("10.0.1.4", "192.168.254.13")]
    state = converged([view(peers=before)], HostNetState())
    after = [peer("10.0.1.3", "192.168.254.14"), peer("10.0.1.5", "192.168.254.12")]
    ops = plan_host([view(peers=after)], HOST, state)
    assert set(ops) == {
        DeleteNeighbour("swlbr4097", "10.0.1.4"),
        SetNeighbour("swlbr4097", "10.0.1.5", "02:42:0a:00:01:05"),
        DeleteFdb("swlvx4097", "02:42:0a:00:01:03", "192.168.254.12"),
        DeleteFdb("swlvx4097", "02:42:0a:00:01:04", "192.168.254.13"),
        DeleteFdb("swlvx4097", ZERO_MAC, "192.168.254.13"),
        AddFdb("swlvx4097", "02:42:0a:00:01:03", "192.168.254.14"),
        AddFdb("swlvx4097", "02:42:0a:00:01:05", "192.168.254.12"),
        AddFdb("swlvx4097", ZERO_MAC, "192.168.254.14"),
    }
    # Deletions first: a MAC that moves is never on two VTEPs.
    assert ops.index(DeleteFdb("swlvx4097", "02:42:0a:00:01:03", "192.168.254.12")) < ops.index(
        AddFdb("swlvx4097", "02:42:0a:00:01:03", "192.168.254.14")
    )
    converged([view(peers=after)], simulate(state, ops))


def test_a_vxlan_device_with_the_wrong_vni_or_learning_is_remade():
    state = converged([view()], HostNetState())
    vxlan = state.links["swlvx4097"]
    for wrong in (
        replace(vxlan, vni=9),
        replace(vxlan, learning=True),
        replace(vxlan, local="1.2.3.4"),
    ):
        broken = replace(state, links={**state.links, "swlvx4097": wrong})
        ops = plan_host([view()], HOST, broken)
        assert ops[:2] == [DeleteLink("swlvx4097"), CreateLink(replace(vxlan, up=True))]
        converged([view()], broken)


def test_a_bridge_that_is_remade_gets_its_port_back():
    state = converged([view(peers=[peer("10.0.1.3", "192.168.254.12")])], HostNetState())
    broken = replace(state, links={**state.links, "swlbr4097": Link("swlbr4097", "dummy")})
    ops = plan_host([view(peers=[peer("10.0.1.3", "192.168.254.12")])], HOST, broken)
    assert SetLink("swlvx4097", master="swlbr4097") in ops
    assert SetSysctl(rp_filter_key("swlbr4097"), "2") in ops
    converged([view(peers=[peer("10.0.1.3", "192.168.254.12")])], broken)


def test_drift_is_repaired_in_place():
    state = converged([view()], HostNetState())
    drifted = replace(
        state,
        links={
            **state.links,
            "swlbr4097": replace(state.links["swlbr4097"], mtu=1500, mac="aa:bb:cc:dd:ee:ff"),
            "swlvx4097": replace(state.links["swlvx4097"], up=False, master=None),
        },
        addresses={**state.addresses, "swlbr4097": frozenset({"10.9.9.9/24"})},
        sysctls={**state.sysctls, rp_filter_key("swlbr4097"): "1"},
    )
    ops = plan_host([view()], HOST, drifted)
    assert ops == [
        SetLink("swlbr4097", mtu=OVERLAY_MTU, mac="02:42:0a:00:01:02"),
        DeleteAddress("swlbr4097", "10.9.9.9/24"),
        AddAddress("swlbr4097", "10.0.1.2/24"),
        SetLink("swlvx4097", master="swlbr4097", up=True),
        SetSysctl(rp_filter_key("swlbr4097"), "2"),
    ]


# -- properties -----------------------------------------------------------------------------

VTEPS = ["192.168.254.11", "192.168.254.12", "192.168.254.13"]
peers_strategy = st.lists(
    st.builds(peer, st.sampled_from([f"10.0.1.{i}" for i in range(3, 9)]), st.sampled_from(VTEPS)),
    max_size=6,
)
views_strategy = st.lists(
    st.builds(
        view,
        st.sampled_from([4097, 4098, 4099]),
        st.sampled_from(["", "10.0.1.2/24", "10.0.1.250/24"]),
        peers_strategy,
    ),
    max_size=3,
)


@given(views_strategy, views_strategy)
def test_any_state_converges_in_one_plan(before, after):
    state = converged(before, HostNetState())
    done = converged(after, state)
    wanted = desired_state(after, HOST)
    assert set(done.links) == set(wanted.links)
    assert dict(done.fdb) == dict(wanted.fdb)
    assert {k: dict(v) for k, v in done.neighbours.items()} == {
        k: dict(v) for k, v in wanted.neighbours.items()
    }


def test_vxlan_runs_on_the_swarms_data_path_port_and_a_new_port_remakes_the_device():
    assert desired_state([view()], HOST).links["swlvx4097"].port == 4789
    wanted = desired_state([view()], HOST, port=7789)
    assert wanted.links["swlvx4097"].port == 7789
    on_default = simulate(HostNetState(), plan_host([view()], HOST, HostNetState()))
    ops = plan_host([view()], HOST, on_default, port=7789)
    assert DeleteLink("swlvx4097") in ops
    assert any(isinstance(op, CreateLink) and op.link.port == 7789 for op in ops)
