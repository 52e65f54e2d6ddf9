"""The embedded DNS server: one per host, answering the tasks that run on it.

A task's resolv.conf names the host's own address on the task's first network; this server
listens on UDP and TCP port 53 of each of those addresses (``listen_on`` follows them as
networks come and go). It knows the asker from the query's source address: ``update`` gives it
the networks (with their services) and, for each local task address, the networks that task is
on. The rules themselves are the pure functions of ``swarmlet.net.resolve``.

Answers carry TTL 0 by default, so scaling and failures show on the next query. A name that is
not ours gets NXDOMAIN, or, when upstream servers are configured and the asker is on a network
that is not internal, is forwarded to them (off by default: the lab has no upstream). A task
whose spec names its own servers (``--dns``) has them as its upstreams instead, as Swarm's
embedded DNS takes a container's DNS servers as its external ones. A query
from an address the server cannot scope is refused: it is not an open resolver. Packets that
do not parse are dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

import dns.exception
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from swarmlet.errors import Unavailable
from swarmlet.net.resolve import resolve, scope
from swarmlet.protocol import NetworkView

if TYPE_CHECKING:
    import dns.asyncquery  # imported for real by a server with upstreams (see __init__)

log = logging.getLogger(__name__)

DNS_PORT = 53
# Largest UDP answer we send to a client that advertises a bigger EDNS buffer; above it, the
# answer is truncated (TC) and the client asks again over TCP.
MAX_UDP_PAYLOAD = 4096
PLAIN_UDP_PAYLOAD = 512
# Forwarded queries in flight at once; beyond that, SERVFAIL at once instead of piling up.
MAX_FORWARDS = 256


class EmbeddedDNS:
    """Swarm's embedded DNS for the tasks of one host.

    ``upstreams`` are ``"IP"`` or ``"IP:PORT"`` (``"[IPv6]:PORT"``) servers to forward names
    that are not ours to, each tried in turn with ``upstream_timeout``. ``rng`` orders answers
    of several addresses (a fresh ``random.Random`` by default).
    """

    def __init__(
        self,
        *,
        port: int = DNS_PORT,
        ttl: int = 0,
        upstreams: Sequence[str] = (),
        upstream_timeout: float = 2.0,
        tcp_idle_timeout: float = 10.0,
        rng: random.Random | None = None,
    ) -> None:
        self._port = port
        self._ttl = ttl
        self._upstreams = [_split_host_port(upstream) for upstream in upstreams]
        if self._upstreams:
            # dnspython's client (and its resolver, TLS and QUIC parts) serves forwarding
            # alone: a server without upstreams, as every host's is by default, does without
            # it in memory.
            import dns.asyncquery  # noqa: F401 (used by _forward)
        self._upstream_timeout = upstream_timeout
        self._tcp_idle_timeout = tcp_idle_timeout
        self._rng = rng or random.Random()
        self._views: tuple[NetworkView, ...] = ()
        self._tasks: dict[str, tuple[str, ...]] = {}
        self._task_upstreams: dict[str, list[tuple[str, int]]] = {}
        self._listeners: dict[str, _Listener] = {}
        self._listening = asyncio.Lock()
        self._forwards: set[asyncio.Task[None]] = set()

    # -- what it knows ------------------------------------------------------------------------

    def update(
        self,
        views: Sequence[NetworkView],
        tasks: Mapping[str, Sequence[str]],
        upstreams: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        """Replace what the server knows: the networks of this host, with their services, for
        each local task's address the IDs of the networks it is on (attachment order), and
        the upstream servers of the tasks that name their own (by address). Takes effect for
        the next query."""
        self._views = tuple(views)
        self._tasks = {address: tuple(network_ids) for address, network_ids in tasks.items()}
        self._task_upstreams = {
            address: [_split_host_port(server) for server in servers]
            for address, servers in (upstreams or {}).items()
            if servers
        }
        if self._task_upstreams:
            import dns.asyncquery  # noqa: F401 (used by _forward; see __init__)

    def _upstreams_of(self, source: str) -> list[tuple[str, int]]:
        """Where a name that is not ours goes, for the task asking from ``source``."""
        return self._task_upstreams.get(source) or self._upstreams

    @property
    def addresses(self) -> frozenset[str]:
        """The addresses it listens on now."""
        return frozenset(self._listeners)

    # -- listening ----------------------------------------------------------------------------

    async def serve(self, addresses: Sequence[str], port: int | None = None) -> None:
        """Listen on ``addresses`` (and on whatever ``listen_on`` sets later) until cancelled,
        then close every listener."""
        if port is not None:
            self._port = port
        try:
            await self.listen_on(addresses)
            await asyncio.get_running_loop().create_future()
        finally:
            await self.aclose()

    async def listen_on(self, addresses: Sequence[str]) -> None:
        """Listen on exactly ``addresses``: open the missing listeners, close the others (and
        their TCP connections). Returns once the sockets are bound or closed.

        An address that cannot be bound raises ``Unavailable`` after the others are done; it is
        tried again by the next call.
        """
        async with self._listening:
            wanted = dict.fromkeys(addresses)
            for address, listener in list(self._listeners.items()):
                if address not in wanted or listener.port != self._port:
                    del self._listeners[address]
                    await listener.close()
            failures: list[tuple[str, OSError]] = []
            for address in wanted:
                if address in self._listeners:
                    continue
                try:
                    self._listeners[address] = await self._open(address)
                except OSError as exc:
                    failures.append((address, exc))
            if failures:
                where = ", ".join(f"{address}:{self._port} ({exc})" for address, exc in failures)
                raise Unavailable(f"cannot listen for DNS on {where}") from failures[0][1]

    async def aclose(self) -> None:
        """Stop listening and drop the forwarded queries still in flight."""
        forwards = list(self._forwards)
        for task in forwards:
            task.cancel()
        await asyncio.gather(*forwards, return_exceptions=True)
        await self.listen_on(())

    async def _open(self, address: str) -> _Listener:
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        udp_socket = _bound_socket(family, socket.SOCK_DGRAM, address, self._port)
        try:
            transport, protocol = await loop.create_datagram_endpoint(
                lambda: _DatagramProtocol(self), sock=udp_socket
            )
        except BaseException:
            udp_socket.close()
            raise
        listener = _Listener(self._port, transport, protocol)
        try:
            tcp_socket = _bound_socket(family, socket.SOCK_STREAM, address, self._port)
            try:
                listener.tcp = await asyncio.start_server(
                    lambda reader, writer: self._serve_stream(listener, reader, writer),
                    sock=tcp_socket,
                )
            except BaseException:
                tcp_socket.close()
                raise
        except BaseException:
            await listener.close()
            raise
        log.debug("DNS listening on %s:%d", address, self._port)
        return listener

    # -- answering ----------------------------------------------------------------------------

    def _answer(self, query: dns.message.Message, source: str) -> dns.message.Message | None:
        """The response to ``query`` from ``source``; ``None`` when it is to be forwarded."""
        if query.opcode() != dns.opcode.QUERY:
            return _error(query, dns.rcode.NOTIMP)
        if len(query.question) != 1:
            return _error(query, dns.rcode.FORMERR)
        question = query.question[0]
        networks = scope(source, self._views, self._tasks)
        if networks is None:
            return _error(query, dns.rcode.REFUSED)
        addresses = None
        if question.rdclass == dns.rdataclass.IN:
            addresses = resolve(question.name.to_text(), question.rdtype, networks, rng=self._rng)
        upstreams = self._upstreams_of(source)
        if addresses is None:
            if upstreams and any(not view.internal for view in networks):
                return None
            return _error(query, dns.rcode.NXDOMAIN)
        response = dns.message.make_response(query, recursion_available=bool(upstreams))
        response.flags |= dns.flags.AA
        if addresses:
            response.answer.append(
                dns.rrset.from_text_list(
                    question.name, self._ttl, dns.rdataclass.IN, dns.rdatatype.A, addresses
                )
            )
        return response

    async def _forward(
        self, query: dns.message.Message, source: str, *, tcp: bool
    ) -> dns.message.Message:
        for host, port in self._upstreams_of(source):
            try:
                if not tcp:
                    response = await dns.asyncquery.udp(
                        query, host, self._upstream_timeout, port, ignore_unexpected=True
                    )
                    if not response.flags & dns.flags.TC:
                        return response
                return await dns.asyncquery.tcp(query, host, self._upstream_timeout, port)
            except (dns.exception.DNSException, OSError, EOFError) as exc:
                log.debug("upstream %s:%d failed for %s: %s", host, port, query.question, exc)
        return _error(query, dns.rcode.SERVFAIL)

    def _on_datagram(
        self, transport: asyncio.DatagramTransport, data: bytes, peer: tuple[str, int]
    ) -> None:
        query = _parse(data)
        if query is None:
            return
        response = self._answer(query, peer[0])
        if response is not None:
            transport.sendto(_udp_wire(response, query), peer)
        elif len(self._forwards) >= MAX_FORWARDS:
            transport.sendto(_udp_wire(_error(query, dns.rcode.SERVFAIL), query), peer)
        else:
            task = asyncio.get_running_loop().create_task(
                self._forward_datagram(transport, query, peer), name=f"dns-forward-{query.id}"
            )
            self._forwards.add(task)
            task.add_done_callback(self._forwards.discard)

    async def _forward_datagram(
        self,
        transport: asyncio.DatagramTransport,
        query: dns.message.Message,
        peer: tuple[str, int],
    ) -> None:
        try:
            response = await self._forward(query, peer[0], tcp=False)
            if not transport.is_closing():
                transport.sendto(_udp_wire(response, query), peer)
        except Exception:
            log.exception("forwarding %s failed", query.question)

    async def _serve_stream(
        self, listener: _Listener, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """One TCP connection: length-prefixed queries, one after the other, until the client
        closes it, stays idle too long or sends something that does not parse."""
        listener.writers.add(writer)
        peer = writer.get_extra_info("peername")
        source = str(peer[0]) if peer else ""
        try:
            while True:
                async with asyncio.timeout(self._tcp_idle_timeout):
                    size = int.from_bytes(await reader.readexactly(2), "big")
                    data = await reader.readexactly(size)
                query = _parse(data)
                if query is None:
                    break
                response = self._answer(query, source)
                if response is None:
                    response = await self._forward(query, source, tcp=True)
                writer.write(_wire(response, max_size=65535, prepend_length=True))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
            pass
        except Exception:
            log.exception("DNS over TCP from %s failed", source)
        finally:
            listener.writers.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


@dataclass(eq=False)
class _Listener:
    """The UDP endpoint and the TCP server on one address."""

    port: int
    udp: asyncio.DatagramTransport
    protocol: _DatagramProtocol
    tcp: asyncio.Server | None = None
    writers: set[asyncio.StreamWriter] = field(default_factory=set)

    async def close(self) -> None:
        self.udp.close()
        if self.tcp is not None:
            self.tcp.close()
        for writer in list(self.writers):
            writer.close()
        if self.tcp is not None:
            await self.tcp.wait_closed()
        await self.protocol.closed


class _DatagramProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: EmbeddedDNS) -> None:
        self._server = server
        self._transport: asyncio.DatagramTransport | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio's datagram transports do not all subclass DatagramTransport (3.11's selector
        # one does not), but every one made by create_datagram_endpoint behaves as one.
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        if self._transport is None:
            return
        try:
            self._server._on_datagram(self._transport, data, (str(addr[0]), int(addr[1])))
        except Exception:
            # One bad query must not take the listener down.
            log.exception("DNS query from %s failed", addr[0])

    def error_received(self, exc: Exception) -> None:
        # ICMP errors for answers to clients that went away: nothing to do.
        log.debug("DNS socket error: %s", exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


def _parse(data: bytes) -> dns.message.Message | None:
    """The query in ``data``, or ``None`` for anything that is not one (garbage, a response)."""
    try:
        message = dns.message.from_wire(data)
    except Exception:
        # dnspython raises many kinds (FormError, ShortHeader, BadLabelType, ValueError…) for
        # malformed input; every one of them means "drop it".
        return None
    if message.flags & dns.flags.QR:
        return None
    return message


def _error(query: dns.message.Message, rcode: dns.rcode.Rcode) -> dns.message.Message:
    response = dns.message.make_response(query)
    response.set_rcode(rcode)
    return response


def _udp_wire(response: dns.message.Message, query: dns.message.Message) -> bytes:
    limit = PLAIN_UDP_PAYLOAD
    if query.edns >= 0:
        limit = min(max(query.payload, PLAIN_UDP_PAYLOAD), MAX_UDP_PAYLOAD)
    return _wire(response, max_size=limit)


def _wire(response: dns.message.Message, *, max_size: int, prepend_length: bool = False) -> bytes:
    # Too big for the client's buffer: truncate and set TC, so it asks again over TCP.
    return response.to_wire(
        max_size=max_size, prefer_truncation=True, prepend_length=prepend_length
    )


def _bound_socket(
    family: socket.AddressFamily, kind: socket.SocketKind, address: str, port: int
) -> socket.socket:
    sock = socket.socket(family, kind)
    try:
        sock.setblocking(False)
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        freebind = getattr(socket, "IP_FREEBIND", None)
        if freebind is not None and family == socket.AF_INET:
            # Bind the host's address on a network even before the interface has it, so the
            # DNS does not race the data plane that configures it.
            sock.setsockopt(socket.IPPROTO_IP, freebind, 1)
        sock.bind((address, port))
    except BaseException:
        sock.close()
        raise
    return sock


def _split_host_port(upstream: str) -> tuple[str, int]:
    """``"10.0.0.2"``, ``"10.0.0.2:5353"``, ``"[fd00::1]:53"`` → (host, port)."""
    if upstream.startswith("["):
        host, _, rest = upstream[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else DNS_PORT
    if upstream.count(":") == 1:
        host, _, port = upstream.partition(":")
        return host, int(port)
    return upstream, DNS_PORT
