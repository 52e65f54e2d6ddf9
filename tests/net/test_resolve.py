"""Swarm's service discovery rules, with plain NetworkViews."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from swarmlet.net.resolve import A, resolve, scope
from swarmlet.protocol import AttachmentEntry, NetworkView, ServiceEntry

AAAA = 28
MX = 15

APP = NetworkView(
    id="net-app",
    name="app",
    vni=4097,
    subnet="10.0.1.0/24",
    local_address="10.0.1.254/24",
    services=[
        ServiceEntry(
            id="svc-web",
            name="web",
            vip="10.0.1.2",
            aliases=["frontend"],
            backends=["10.0.1.5", "10.0.1.6"],
        ),
        ServiceEntry(id="svc-db", name="db", vip=None, backends=["10.0.1.7", "10.0.1.8"]),
        ServiceEntry(id="svc-idle", name="idle", vip=None),
    ],
)
OTHER = NetworkView(
    id="net-other",
    name="other",
    vni=4098,
    subnet="10.0.2.0/24",
    services=[
        ServiceEntry(id="svc-web", name="web", vip="10.0.2.2", backends=["10.0.2.5"]),
        ServiceEntry(id="svc-cache", name="cache", vip="10.0.2.3", backends=["10.0.2.9"]),
    ],
)
INGRESS = NetworkView(
    id="net-ingress",
    name="ingress",
    vni=4096,
    subnet="10.0.0.0/24",
    ingress=True,
    services=[
        ServiceEntry(id="svc-web", name="web", vip="10.0.0.5", backends=["10.0.0.7"]),
        ServiceEntry(id="svc-pub", name="pub", vip="10.0.0.6", backends=["10.0.0.8"]),
    ],
)
# An attachable network with two plain containers on it (`docker run --network dc`) beside a
# service, one container named like the service.
DC = NetworkView(
    id="net-dc",
    name="dc",
    vni=4099,
    subnet="10.0.3.0/24",
    services=[ServiceEntry(id="svc-api", name="api", vip="10.0.3.2", backends=["10.0.3.5"])],
    attachments=[
        AttachmentEntry(id="t-db", name="Postgres", aliases=["db", "pg.local"], address="10.0.3.7"),
        AttachmentEntry(id="t-api", name="api", address="10.0.3.8"),
    ],
)


def test_a_service_name_resolves_to_its_vip() -> None:
    assert resolve("web", A, [APP]) == ["10.0.1.2"]


def test_a_dnsrr_service_resolves_to_its_tasks() -> None:
    assert resolve("db", A, [APP]) == ["10.0.1.7", "10.0.1.8"]


def test_tasks_name_resolves_to_running_tasks_in_either_mode() -> None:
    assert resolve("tasks.web", A, [APP]) == ["10.0.1.5", "10.0.1.6"]
    assert resolve("tasks.db", A, [APP]) == ["10.0.1.7", "10.0.1.8"]


def test_an_alias_resolves_like_the_service_name() -> None:
    assert resolve("frontend", A, [APP]) == ["10.0.1.2"]
    assert resolve("tasks.frontend", A, [APP]) == ["10.0.1.5", "10.0.1.6"]


def test_names_are_case_insensitive_and_may_end_with_a_dot() -> None:
    assert resolve("WEB.", A, [APP]) == ["10.0.1.2"]
    assert resolve("Tasks.Web", A, [APP]) == ["10.0.1.5", "10.0.1.6"]


def test_a_task_sees_only_the_services_of_its_networks() -> None:
    assert resolve("cache", A, [APP]) is None
    assert resolve("cache", A, [OTHER]) == ["10.0.2.3"]
    assert resolve("db", A, [OTHER]) is None
    assert resolve("web", A, []) is None


def test_a_service_on_several_networks_answers_with_each_address_once() -> None:
    assert resolve("web", A, [APP, OTHER]) == ["10.0.1.2", "10.0.2.2"]
    assert resolve("tasks.web", A, [APP, OTHER, APP]) == ["10.0.1.5", "10.0.1.6", "10.0.2.5"]


def test_name_dot_network_looks_on_that_network_only() -> None:
    assert resolve("web.other", A, [APP, OTHER]) == ["10.0.2.2"]
    assert resolve("tasks.web.app.", A, [APP, OTHER]) == ["10.0.1.5", "10.0.1.6"]
    assert resolve("WEB.Other", A, [APP, OTHER]) == ["10.0.2.2"]
    # Not a network of the asker: nothing, not another network's answer.
    assert resolve("web.other", A, [APP]) is None
    assert resolve("cache.app", A, [APP, OTHER]) is None


def test_network_names_may_hold_dots() -> None:
    dotted = APP.model_copy(update={"name": "my.app"})
    assert resolve("web.my.app", A, [dotted, OTHER]) == ["10.0.1.2"]
    assert resolve("tasks.db.my.app", A, [dotted]) == ["10.0.1.7", "10.0.1.8"]


def test_names_that_are_not_ours_are_none() -> None:
    assert resolve("example.com", A, [APP, OTHER]) is None
    assert resolve("tasks.nothing", A, [APP]) is None
    assert resolve("tasks", A, [APP]) is None
    assert resolve("", A, [APP]) is None
    assert resolve(".", A, [APP]) is None


def test_other_query_types_for_our_names_are_empty_answers() -> None:
    assert resolve("web", AAAA, [APP]) == []
    assert resolve("tasks.db", MX, [APP]) == []
    assert resolve("example.com", AAAA, [APP]) is None


def test_a_service_without_running_tasks_is_ours_without_an_address() -> None:
    assert resolve("idle", A, [APP]) == []
    assert resolve("tasks.idle", A, [APP]) == []


def test_the_ingress_network_answers_only_names_no_other_network_knows() -> None:
    assert resolve("web", A, [INGRESS, APP]) == ["10.0.1.2"]
    assert resolve("pub", A, [APP, INGRESS]) == ["10.0.0.6"]
    assert resolve("web", A, [INGRESS]) == ["10.0.0.5"]


def test_an_rng_spreads_the_order_of_several_addresses() -> None:
    backends = [f"10.0.1.{host}" for host in range(10, 30)]
    view = APP.model_copy(
        update={"services": [ServiceEntry(id="s", name="rr", vip=None, backends=backends)]}
    )
    orders = {tuple(resolve("rr", A, [view], rng=random.Random(seed)) or []) for seed in range(5)}
    assert all(sorted(order) == sorted(backends) for order in orders)
    assert len(orders) > 1
    # The same seed gives the same order: a failure can be replayed.
    assert resolve("rr", A, [view], rng=random.Random(7)) == resolve(
        "rr", A, [view], rng=random.Random(7)
    )
    # The views are not touched.
    assert view.services[0].backends == backends


def test_scope_of_a_known_task_is_its_networks_in_order() -> None:
    tasks = {"10.0.2.5": ["net-other", "net-app", "net-gone"]}
    assert scope("10.0.2.5", [APP, OTHER], tasks) == [OTHER, APP]


def test_scope_of_an_unknown_source_is_every_network_holding_it() -> None:
    wide = OTHER.model_copy(update={"id": "net-wide", "subnet": "10.0.0.0/16"})
    assert scope("10.0.1.254", [APP, OTHER, wide], {}) == [APP, wide]
    assert scope("192.0.2.1", [APP, OTHER], {}) is None
    assert scope("not-an-ip", [APP], {}) is None


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40), st.sampled_from([A, AAAA, MX]))
def test_any_name_gets_none_or_addresses_of_the_askers_networks(name: str, qtype: int) -> None:
    networks = [APP, OTHER, INGRESS, DC]
    known = {
        address
        for view in networks
        for service in view.services
        for address in [service.vip or "", *service.backends]
    } | {attachment.address for view in networks for attachment in view.attachments}
    answer = resolve(name, qtype, networks)
    assert answer is None or set(answer) <= known
    if answer is not None and qtype != A:
        assert answer == []


def test_a_container_on_the_network_answers_to_its_name_and_each_alias() -> None:
    assert resolve("postgres", A, [DC]) == ["10.0.3.7"]
    assert resolve("DB.", A, [DC]) == ["10.0.3.7"]
    assert resolve("pg.local", A, [DC]) == ["10.0.3.7"]
    assert resolve("postgres", AAAA, [DC]) == []
    # Only a service has a tasks.<name>.
    assert resolve("tasks.postgres", A, [DC]) is None


def test_a_container_name_dot_network_looks_on_that_network_only() -> None:
    assert resolve("postgres.dc", A, [APP, DC]) == ["10.0.3.7"]
    assert resolve("db.DC.", A, [APP, DC]) == ["10.0.3.7"]
    assert resolve("postgres.app", A, [APP, DC]) is None
    # A dotted alias is tried whole first, then as <name>.<network>.
    assert resolve("pg.local.dc", A, [DC]) == ["10.0.3.7"]


def test_a_container_is_seen_only_from_its_network() -> None:
    assert resolve("postgres", A, [APP, OTHER]) is None


def test_a_container_named_like_a_service_answers_beside_it() -> None:
    assert resolve("api", A, [DC]) == ["10.0.3.2", "10.0.3.8"]
    assert resolve("tasks.api", A, [DC]) == ["10.0.3.5"]


def test_a_container_without_a_name_answers_to_its_aliases_only() -> None:
    unnamed = DC.model_copy(
        update={
            "attachments": [AttachmentEntry(id="t", name="", aliases=["x"], address="10.0.3.9")]
        }
    )
    assert resolve("x", A, [unnamed]) == ["10.0.3.9"]
    assert resolve("", A, [unnamed]) is None
