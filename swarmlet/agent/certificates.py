"""The node's TLS identity from the agent's side: the first certificate, got with a join
token, and renewals before it expires.

Joining, the node fetches the manager's root over an unverified connection and checks it
against the digest in the token before it sends anything; from then on it talks to managers
only over connections verified against that root, and names a manager by the role its
certificate carries (``swarm-manager``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from ssl import SSLContext
from typing import TypeVar

import aiohttp
from pydantic import BaseModel

from swarmlet.clock import Clock
from swarmlet.errors import Forbidden, InvalidSpec, Unavailable
from swarmlet.pki import CertificateInfo, Credentials, JoinToken, root_digest
from swarmlet.pki.keygen import KeyMaker, new_key_and_csr_apart
from swarmlet.pki.tls import MANAGER_NAME, client_context, unverified_context
from swarmlet.protocol import (
    CA_PATH,
    JOIN_PATH,
    RENEW_PATH,
    CertificateRequest,
    IssuedCertificate,
)

log = logging.getLogger(__name__)

# The model a manager answers with.
M = TypeVar("M", bound=BaseModel)

TIMEOUT = aiohttp.ClientTimeout(total=15, connect=5)
# Renewal starts between half and four fifths of the remaining validity (Swarm's window), so
# that the nodes of a cluster do not all renew at once.
RENEW_WINDOW = (0.5, 0.8)
RETRY_START = timedelta(seconds=1)
RETRY_MAX = timedelta(seconds=30)


def _url(addr: str, path: str) -> str:
    return f"https://{addr}{path}"


async def _fetch_root(http: aiohttp.ClientSession, addr: str, digest: str) -> str:
    async with http.get(_url(addr, CA_PATH), ssl=unverified_context()) as response:
        root = await response.text()
    if root_digest(root) != digest:
        raise InvalidSpec(f"remote CA does not match fingerprint. Expected: {digest}")
    return root


async def post_to_manager(
    http: aiohttp.ClientSession, url: str, body: BaseModel, tls: SSLContext, answer: type[M]
) -> M:
    """POST ``body`` to a manager's port over TLS and read its answer as ``answer``; a
    refusal raises Forbidden (403), InvalidSpec (other 4xx) or Unavailable, with the
    manager's message. Also a manager's own requests to another (joining etcd)."""
    async with http.post(
        url,
        data=body.model_dump_json(),
        headers={"Content-Type": "application/json"},
        ssl=tls,
        server_hostname=MANAGER_NAME,
    ) as response:
        text = await response.text()
    if response.status == 200:
        return answer.model_validate_json(text)
    try:
        message = str(json.loads(text)["message"])
    except (ValueError, KeyError, TypeError):
        message = text or response.reason or "no answer"
    if response.status == 403:
        raise Forbidden(message)
    if 400 <= response.status < 500:
        raise InvalidSpec(message)
    raise Unavailable(message)


async def join(
    addrs: Sequence[str],
    token: str,
    credentials: Credentials,
    new_key_and_csr: KeyMaker = new_key_and_csr_apart,
) -> str:
    """Get the node's first certificate from one of the managers; returns the node's ID.

    Raises InvalidSpec for a token the manager refuses or whose digest does not name the
    manager's root, Unavailable when no manager answers.
    """
    digest = JoinToken.parse(token).digest
    errors = []
    for addr in addrs:
        try:
            async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
                root = await _fetch_root(http, addr, digest)
                key, csr = await new_key_and_csr()
                body = CertificateRequest(csr=csr, token=token)
                issued = await post_to_manager(
                    http, _url(addr, JOIN_PATH), body, client_context(root), IssuedCertificate
                )
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            errors.append(f"{addr}: {exc}")
            continue
        credentials.save(trust_pem=issued.trust, cert_pem=issued.certificate, key_pem=key)
        return issued.node_id
    raise Unavailable("could not reach a manager: " + "; ".join(errors))


def renewal_delay(certificate: CertificateInfo, now: datetime, rng: random.Random) -> timedelta:
    """How long to wait before renewing: a random point in the window of what is left."""
    left = certificate.not_after - now
    if left <= timedelta(0):
        return timedelta(0)
    return left * rng.uniform(*RENEW_WINDOW)


class CertificateRenewer:
    """Renews the node's certificate before it expires, or at once when asked (the node's
    role changed, or the cluster moves to a new root). Connections open at the time go on;
    the next ones present the new certificate."""

    def __init__(
        self,
        credentials: Credentials,
        manager_addrs: Sequence[str],
        clock: Clock,
        rng: random.Random | None = None,
        renewed: Callable[[], Awaitable[None]] | None = None,
        new_key_and_csr: KeyMaker = new_key_and_csr_apart,
    ) -> None:
        self._credentials = credentials
        self._new_key_and_csr = new_key_and_csr
        self._on_renewed = renewed
        # Tried in turn; the agent replaces them when the swarm's managers change.
        self.managers = list(manager_addrs)
        self._clock = clock
        self._rng = rng or random.Random()
        self._asked = asyncio.Event()
        self.renewed = 0

    def renew_soon(self) -> None:
        self._asked.set()

    async def run(self) -> None:
        retry = RETRY_START
        while True:
            certificate = self._credentials.certificate()
            delay = renewal_delay(certificate, self._clock.now(), self._rng)
            await self._wait(delay)
            try:
                await self.renew()
                retry = RETRY_START
            except (InvalidSpec, Forbidden, Unavailable) as exc:
                log.warning("certificate renewal failed: %s", exc.message)
                await self._wait(retry)
                retry = min(retry * 2, RETRY_MAX)

    async def _wait(self, delay: timedelta) -> None:
        """Sleep ``delay`` on the clock, or less when a renewal is asked for."""
        sleeper = asyncio.ensure_future(self._clock.sleep(delay.total_seconds()))
        asked = asyncio.ensure_future(self._asked.wait())
        try:
            await asyncio.wait({sleeper, asked}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            asked.cancel()
        self._asked.clear()

    async def renew(self) -> None:
        """Raises Unavailable when no manager renews it."""
        errors = []
        key, csr = await self._new_key_and_csr()
        for addr in self.managers:
            tls = client_context(self._credentials.trust(), self._credentials)
            try:
                async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
                    url = _url(addr, RENEW_PATH)
                    issued = await post_to_manager(
                        http, url, CertificateRequest(csr=csr), tls, IssuedCertificate
                    )
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                errors.append(f"{addr}: {exc}")
                continue
            self._credentials.save(trust_pem=issued.trust, cert_pem=issued.certificate, key_pem=key)
            self.renewed += 1
            until = self._credentials.certificate().not_after
            log.info("certificate renewed: valid until %s", until)
            if self._on_renewed is not None:
                await self._on_renewed()
            return
        raise Unavailable("no manager renewed the certificate: " + "; ".join(errors))
