"""The embedded DNS server on loopback addresses and an unprivileged port, queried with
dnspython over UDP and TCP."""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import AsyncIterator

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from swarmlet.errors import Unavailable
from swarmlet.net.dns import EmbeddedDNS
from swarmlet.protocol import AttachmentEntry, NetworkView, ServiceEntry

HOST = "127.0.0.1"
SECOND = "127.0.0.2"
TIMEOUT = 2.0

APP = NetworkView(
    id="net-app",
    name="app",
    vni=4097,
    subnet="10.0.1.0/24",
    services=[
        ServiceEntry(id="svc-web", name="web", vip="10.0.1.2", backends=["10.0.1.5", "10.0.1.6"]),
        ServiceEntry(id="svc-db", name="db", vip=None, backends=["10.0.1.7"]),
    ],
)
OTHER = NetworkView(
    id="net-other",
    name="other",
    vni=4098,
    subnet="10.0.2.0/24",
    services=[ServiceEntry(id="svc-cache", name="cache", vip="10.0.2.3")],
)
# The tests' queries come from 127.0.0.1: it plays a task on APP.
TASKS = {HOST: ["net-app"]}


def free_port() -> int:
    """A port free for UDP and TCP on both test addresses."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind((HOST, 0))
            port = int(probe.getsockname()[1])
        try:
            for address in (HOST, SECOND):
                for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                    with socket.socket(socket.AF_INET, kind) as sock:
                        sock.bind((address, port))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port")


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
async def server(port: int) -> AsyncIterator[EmbeddedDNS]:
    dns_server = EmbeddedDNS(port=port, rng=random.Random(1))
    dns_server.update([APP, OTHER], TASKS)
    await dns_server.listen_on([HOST])
    try:
        yield dns_server
    finally:
        await dns_server.aclose()


async def udp(
    name: str, port: int, rdtype: str = "A", where: str = HOST, **kwargs: object
) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype, **kwargs)  # type: ignore[arg-type]
    return await dns.asyncquery.udp(query, where, TIMEOUT, port, source=HOST)


async def tcp(name: str, port: int, rdtype: str = "A", where: str = HOST) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype)
    return await dns.asyncquery.tcp(query, where, TIMEOUT, port, source=HOST)


def addresses(response: dns.message.Message) -> list[str]:
    return [rdata.to_text() for rrset in response.answer for rdata in rrset]


async def test_a_service_name_answers_its_vip_over_udp_and_tcp(
    server: EmbeddedDNS, port: int
) -> None:
    for response in (await udp("web", port), await tcp("web.", port)):
        assert response.rcode() == dns.rcode.NOERROR
        assert addresses(response) == ["10.0.1.2"]
        assert response.answer[0].ttl == 0
        assert response.flags & dns.flags.AA


async def test_tasks_names_and_dnsrr_answer_task_addresses(server: EmbeddedDNS, port: int) -> None:
    assert sorted(addresses(await udp("tasks.web", port))) == ["10.0.1.5", "10.0.1.6"]
    assert addresses(await udp("DB", port)) == ["10.0.1.7"]


async def test_names_not_ours_are_nxdomain(server: EmbeddedDNS, port: int) -> None:
    response = await udp("example.com", port)
    assert response.rcode() == dns.rcode.NXDOMAIN
    assert not response.answer
    assert (await tcp("nothing", port)).rcode() == dns.rcode.NXDOMAIN


async def test_aaaa_for_our_names_is_an_empty_answer(server: EmbeddedDNS, port: int) -> None:
    response = await udp("web", port, "AAAA")
    assert response.rcode() == dns.rcode.NOERROR
    assert not response.answer


async def test_the_asker_sees_only_its_networks(server: EmbeddedDNS, port: int) -> None:
    assert (await udp("cache", port)).rcode() == dns.rcode.NXDOMAIN
    server.update([APP, OTHER], {HOST: ["net-app", "net-other"]})
    assert addresses(await udp("cache", port)) == ["10.0.2.3"]


async def test_an_update_shows_in_the_next_answer(server: EmbeddedDNS, port: int) -> None:
    scaled = APP.model_copy(
        update={
            "services": [
                ServiceEntry(id="svc-db", name="db", vip=None, backends=["10.0.1.7", "10.0.1.9"])
            ]
        }
    )
    server.update([scaled], TASKS)
    assert sorted(addresses(await udp("db", port))) == ["10.0.1.7", "10.0.1.9"]
    assert (await udp("web", port)).rcode() == dns.rcode.NXDOMAIN
    server.update([], {})
    assert (await tcp("db", port)).rcode() == dns.rcode.REFUSED


async def test_a_source_it_does_not_know_is_scoped_by_subnet_or_refused(
    server: EmbeddedDNS, port: int
) -> None:
    server.update([APP], {})
    assert (await udp("web", port)).rcode() == dns.rcode.REFUSED
    loopback = APP.model_copy(update={"subnet": "127.0.0.0/8"})
    server.update([loopback], {})
    assert addresses(await udp("web", port)) == ["10.0.1.2"]


async def test_a_plain_container_is_found_by_name_and_finds_the_services(
    server: EmbeddedDNS, port: int
) -> None:
    # A container on the network (an attachment): its host has no task at its address, so
    # its queries are scoped by the subnet that holds it (the loopback plays that subnet).
    container = AttachmentEntry(id="t-pg", name="postgres", aliases=["db2"], address="10.0.1.40")
    dc = APP.model_copy(update={"subnet": "127.0.0.0/8", "attachments": [container]})
    server.update([dc], {})
    assert addresses(await udp("web", port)) == ["10.0.1.2"]
    assert addresses(await udp("Postgres", port)) == ["10.0.1.40"]
    assert addresses(await tcp("db2.app.", port)) == ["10.0.1.40"]
    # A task on the network finds it too.
    server.update([dc], TASKS)
    assert addresses(await udp("postgres.app", port)) == ["10.0.1.40"]
    server.update([APP], TASKS)
    assert (await udp("postgres", port)).rcode() == dns.rcode.NXDOMAIN


async def test_it_answers_on_every_address_it_listens_on(server: EmbeddedDNS, port: int) -> None:
    await server.listen_on([HOST, SECOND])
    assert server.addresses == {HOST, SECOND}
    for where in (HOST, SECOND):
        assert addresses(await udp("web", port, where=where)) == ["10.0.1.2"]
        assert addresses(await tcp("web", port, where=where)) == ["10.0.1.2"]


async def test_an_address_taken_away_is_closed(server: EmbeddedDNS, port: int) -> None:
    await server.listen_on([HOST, SECOND])
    reader, writer = await asyncio.open_connection(SECOND, port)
    writer.write(dns.message.make_query("web", "A").to_wire(prepend_length=True))
    size = int.from_bytes(await asyncio.wait_for(reader.readexactly(2), TIMEOUT), "big")
    await reader.readexactly(size)

    await server.listen_on([HOST])
    assert server.addresses == {HOST}
    # Its open TCP connection is closed, new ones are refused, its UDP port is free again.
    assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""
    writer.close()
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection(SECOND, port)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((SECOND, port))
    assert addresses(await udp("web", port)) == ["10.0.1.2"]
    # And it can come back (the closed connection's TIME_WAIT does not block the port).
    await server.listen_on([HOST, SECOND])
    assert addresses(await tcp("web", port, where=SECOND)) == ["10.0.1.2"]


async def test_malformed_packets_are_ignored(server: EmbeddedDNS, port: int) -> None:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        asyncio.DatagramProtocol, remote_addr=(HOST, port)
    )
    try:
        response = dns.message.make_response(dns.message.make_query("web", "A"))
        for garbage in (b"", b"\x00", b"\xff" * 12, b"\x12\x34" + b"\x01" * 40, response.to_wire()):
            transport.sendto(garbage)
    finally:
        transport.close()
    reader, writer = await asyncio.open_connection(HOST, port)
    writer.write(b"\x00\x05hello")
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""
    writer.close()
    assert addresses(await udp("web", port)) == ["10.0.1.2"]
    assert addresses(await tcp("web", port)) == ["10.0.1.2"]


async def test_a_large_answer_is_truncated_over_udp_and_whole_over_tcp(
    server: EmbeddedDNS, port: int
) -> None:
    backends = [f"10.0.1.{host}" for host in range(10, 110)]
    big = APP.model_copy(
        update={"services": [ServiceEntry(id="s", name="big", vip=None, backends=backends)]}
    )
    server.update([big], TASKS)
    response = await udp("big", port, use_edns=False)
    assert response.flags & dns.flags.TC
    assert sorted(addresses(await tcp("big", port))) == sorted(backends)


async def test_several_queries_on_one_tcp_connection(server: EmbeddedDNS, port: int) -> None:
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        for name in ("web", "db", "nothing"):
            writer.write(dns.message.make_query(name, "A").to_wire(prepend_length=True))
        await writer.drain()
        rcodes = []
        for _ in range(3):
            size = int.from_bytes(await reader.readexactly(2), "big")
            rcodes.append(dns.message.from_wire(await reader.readexactly(size)).rcode())
    finally:
        writer.close()
    assert rcodes == [dns.rcode.NOERROR, dns.rcode.NOERROR, dns.rcode.NXDOMAIN]


async def test_serve_listens_until_cancelled(port: int) -> None:
    dns_server = EmbeddedDNS(port=80)
    dns_server.update([APP], TASKS)
    task = asyncio.create_task(dns_server.serve([HOST], port=port), name="dns")
    for _ in range(100):
        if dns_server.addresses:
            break
        await asyncio.sleep(0.01)
    assert addresses(await udp("web", port)) == ["10.0.1.2"]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert dns_server.addresses == frozenset()
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection(HOST, port)


async def test_an_address_it_cannot_bind_raises_and_the_others_still_listen(port: int) -> None:
    dns_server = EmbeddedDNS(port=port)
    dns_server.update([APP], TASKS)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind((SECOND, port))
        try:
            with pytest.raises(Unavailable, match=SECOND):
                await dns_server.listen_on([HOST, SECOND])
            assert dns_server.addresses == {HOST}
            assert addresses(await udp("web", port)) == ["10.0.1.2"]
        finally:
            await dns_server.aclose()


class TestForwarding:
    """With upstream servers, names that are not ours are forwarded; another EmbeddedDNS on
    loopback plays the upstream."""

    @pytest.fixture
    async def upstream(self) -> AsyncIterator[int]:
        upstream_port = free_port()
        outside = NetworkView(
            id="net-outside",
            name="outside",
            vni=1,
            subnet="127.0.0.0/8",
            services=[ServiceEntry(id="svc-x", name="example.org", vip="192.0.2.1")],
        )
        upstream = EmbeddedDNS(port=upstream_port)
        upstream.update([outside], {})
        await upstream.listen_on([SECOND])
        try:
            yield upstream_port
        finally:
            await upstream.aclose()

    async def test_a_name_not_ours_is_answered_by_the_upstream(
        self, upstream: int, port: int
    ) -> None:
        forwarder = EmbeddedDNS(port=port, upstreams=[f"{SECOND}:{upstream}"])
        forwarder.update([APP], TASKS)
        await forwarder.listen_on([HOST])
        try:
            assert addresses(await udp("example.org", port)) == ["192.0.2.1"]
            assert addresses(await tcp("example.org", port)) == ["192.0.2.1"]
            assert (await udp("missing.org", port)).rcode() == dns.rcode.NXDOMAIN
            # Our own names never leave the host.
            assert addresses(await udp("web", port)) == ["10.0.1.2"]
        finally:
            await forwarder.aclose()

    async def test_a_task_with_its_own_servers_is_forwarded_to_them_alone(
        self, upstream: int, port: int
    ) -> None:
        # The task asking from HOST named its own server (`--dns`): the server has none of its
        # own, and the task's own is used, over UDP and TCP.
        forwarder = EmbeddedDNS(port=port)
        forwarder.update([APP], TASKS, {HOST: [f"{SECOND}:{upstream}"]})
        await forwarder.listen_on([HOST])
        try:
            assert addresses(await udp("example.org", port)) == ["192.0.2.1"]
            assert addresses(await tcp("example.org", port)) == ["192.0.2.1"]
            assert addresses(await udp("web", port)) == ["10.0.1.2"]
            # Another task's servers are not this one's: without them, NXDOMAIN.
            forwarder.update([APP], TASKS, {"10.0.1.99": [f"{SECOND}:{upstream}"]})
            assert (await udp("example.org", port)).rcode() == dns.rcode.NXDOMAIN
        finally:
            await forwarder.aclose()

    async def test_an_internal_network_is_not_forwarded(self, upstream: int, port: int) -> None:
        forwarder = EmbeddedDNS(port=port, upstreams=[f"{SECOND}:{upstream}"])
        forwarder.update([APP.model_copy(update={"internal": True})], TASKS)
        await forwarder.listen_on([HOST])
        try:
            assert (await udp("example.org", port)).rcode() == dns.rcode.NXDOMAIN
        finally:
            await forwarder.aclose()

    async def test_an_upstream_that_does_not_answer_is_servfail(self, port: int) -> None:
        silent = free_port()
        forwarder = EmbeddedDNS(port=port, upstreams=[f"{SECOND}:{silent}"], upstream_timeout=0.3)
        forwarder.update([APP], TASKS)
        await forwarder.listen_on([HOST])
        try:
            assert (await udp("example.org", port)).rcode() == dns.rcode.SERVFAIL
            assert (await tcp("example.org", port)).rcode() == dns.rcode.SERVFAIL
        finally:
            await forwarder.aclose()
