"""The engine's copies of the overlay networks (``swarmlet.agent.local_networks``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from swarmlet.agent.local_networks import (
    LocalNetwork,
    LocalNetworkPlan,
    LocalNetworks,
    create_request,
    local_names,
    plan_local_networks,
)
from swarmlet.errors import EngineError
from swarmlet.net.driver import NETWORK_OPTION
from swarmlet.protocol import NetworkView

APP = NetworkView(id="app-id", name="app", vni=4097, subnet="10.0.1.0/24")
INGRESS = NetworkView(id="ing-id", name="ingress", vni=4096, subnet="10.0.0.0/24", ingress=True)


def test_every_view_gets_a_copy_and_copies_no_view_wants_go():
    stale = LocalNetwork("e1", "old", "old-id", "10.0.9.0/24")
    kept = LocalNetwork("e2", "ingress", "ing-id", "10.0.0.0/24")
    plan = plan_local_networks([APP, INGRESS], [stale, kept], suffix="")
    assert plan.create == (APP,)
    assert plan.remove == (stale,)


def test_a_copy_of_another_name_or_subnet_is_made_again():
    renamed = LocalNetwork("e1", "app.node1", "app-id", "10.0.1.0/24")
    plan = plan_local_networks([APP], [renamed], suffix="")
    assert plan.create == (APP,)
    assert plan.remove == (renamed,)
    assert plan_local_networks([APP], [renamed], suffix=".node1").create == ()
    resized = LocalNetwork("e1", "app", "app-id", "10.0.9.0/24")
    assert plan_local_networks([APP], [resized], suffix="") == LocalNetworkPlan((APP,), (resized,))


def test_a_name_still_held_by_a_copy_going_away_gives_way_to_the_second_name():
    # A network "app" removed and made again while the engine still holds the old copy.
    stuck = LocalNetwork("e1", "app", "old-app-id", "10.0.1.0/24")
    plan = plan_local_networks([APP], [stuck], suffix="")
    assert plan == LocalNetworkPlan(create=(APP,), remove=(stuck,))
    second = LocalNetwork("e2", f"app-{APP.id[:12]}", APP.id, APP.subnet)
    assert plan_local_networks([APP], [stuck, second], suffix="").create == ()


def test_the_create_request_names_the_plugin_and_the_swarm_network():
    assert local_names(APP, ".node2") == ("app.node2", f"app.node2-{APP.id[:12]}")
    body = create_request(APP, "swarmlet", "app.node2")
    assert body["Name"] == "app.node2"
    assert body["Driver"] == body["IPAM"]["Driver"] == "swarmlet"
    assert body["IPAM"]["Config"] == [{"Subnet": "10.0.1.0/24"}]
    assert body["IPAM"]["Options"] == body["Options"] == {NETWORK_OPTION: "app-id"}


class FakeNetworkEngine:
    def __init__(self) -> None:
        self.networks: dict[str, dict[str, Any]] = {}
        self.busy: set[str] = set()

    async def list_networks(self, filters: Mapping[str, list[str]]) -> list[dict[str, Any]]:
        drivers = filters.get("driver", [])
        return [n for n in self.networks.values() if not drivers or n["Driver"] in drivers]

    async def create_network(self, body: Mapping[str, Any]) -> str:
        network_id = f"engine-{len(self.networks)}"
        self.networks[network_id] = {**body, "Id": network_id}
        return network_id

    async def remove_network(self, network_id: str) -> None:
        if network_id in self.busy:
            raise EngineError("error while removing network: network has active endpoints", 403)
        del self.networks[network_id]


async def test_sync_makes_the_copies_and_knows_which_swarm_network_each_stands_for():
    engine = FakeNetworkEngine()
    local = LocalNetworks(engine, "swarmlet", "")
    await local.sync([APP, INGRESS])
    assert sorted(n["Name"] for n in engine.networks.values()) == ["app", "ingress"]
    app_copy = local.engine_id("app-id")
    assert app_copy is not None
    assert await local.swarm_network(app_copy) == "app-id"
    # Another instance (a restarted daemon) finds them through the engine.
    assert await LocalNetworks(engine, "swarmlet", "").swarm_network(app_copy) == "app-id"

    await local.sync([INGRESS])
    assert [n["Name"] for n in engine.networks.values()] == ["ingress"]


async def test_a_copy_still_in_use_stays_until_a_later_sync():
    engine = FakeNetworkEngine()
    local = LocalNetworks(engine, "swarmlet", "")
    await local.sync([APP])
    copy = local.engine_id("app-id")
    assert copy is not None
    engine.busy.add(copy)
    await local.sync([])
    assert copy in engine.networks
    assert local.leftover  # the network agent syncs again a little later
    # A network of the same name made again meanwhile: its copy takes the second name.
    remade = NetworkView(id="new-app-id", name="app", vni=4098, subnet="10.0.2.0/24")
    await local.sync([remade])
    assert sorted(n["Name"] for n in engine.networks.values()) == ["app", "app-new-app-id"]
    assert local.name_of(remade.id) == "app-new-app-id"
    engine.busy.clear()
    await local.sync([])
    assert engine.networks == {}
    assert not local.leftover
