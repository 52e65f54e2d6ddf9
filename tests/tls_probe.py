"""Probing a manager's port (2377) with a given TLS context: does a session websocket open?"""

from __future__ import annotations

import asyncio
import ssl

import aiohttp

from swarmlet.pki.tls import MANAGER_NAME
from swarmlet.protocol import SESSION_PATH

HANDSHAKE_FAILED = 0


async def open_session(addr: str, tls: ssl.SSLContext) -> int:
    """Try to open a session websocket at ``addr`` (host:port): 101 when it opened, the HTTP
    status when refused after the TLS handshake, HANDSHAKE_FAILED when the handshake itself
    was refused."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        try:
            url = f"https://{addr}{SESSION_PATH}"
            async with http.ws_connect(url, ssl=tls, server_hostname=MANAGER_NAME):
                return 101
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status
        except aiohttp.ClientConnectionError:
            # With TLS 1.3 the server checks the client's certificate after the client has
            # finished: the refusal shows as a closed connection rather than a TLS alert.
            return HANDSHAKE_FAILED


def open_session_blocking(addr: str, tls: ssl.SSLContext) -> int:
    """`open_session` for a test without an event loop, in an event loop of its own."""

    async def open_and_settle() -> int:
        try:
            return await open_session(addr, tls)
        finally:
            # TLS connections close asynchronously: give them a moment before the loop ends,
            # or a socket is left for the garbage collector (aiohttp's advice for a closing
            # loop).
            await asyncio.sleep(0.25)

    return asyncio.run(open_and_settle())
