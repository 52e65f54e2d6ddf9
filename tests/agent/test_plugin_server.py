"""The plugin's socket (``swarmlet.agent.plugin_server``): a real unix socket, answered as the
engine expects, and the peer's process known."""

from __future__ import annotations

import os
from pathlib import Path

import aiohttp

from swarmlet.agent.plugin_server import PluginServer, socket_path, teardown_plugins
from swarmlet.net.driver import NetworkPlugin
from tests.net.test_driver import FakeHost


async def post(path: Path, method: str, body: bytes = b"") -> tuple[int, dict]:
    connector = aiohttp.UnixConnector(path=str(path))
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.post(f"http://plugin{method}", data=body) as answer,
    ):
        return answer.status, await answer.json(content_type=None)


async def test_the_engine_finds_the_plugin_by_name_and_is_answered_in_json(tmp_path):
    host = FakeHost()
    server = PluginServer(NetworkPlugin(host), "swl-test", tmp_path)
    await server.start()
    try:
        assert server.path == socket_path("swl-test", tmp_path)
        status, body = await post(server.path, "/Plugin.Activate")
        assert status == 200
        assert body == {"Implements": ["NetworkDriver", "IpamDriver"]}
        status, body = await post(server.path, "/NetworkDriver.AllocateNetwork")
        assert status == 404  # the protocol's "not implemented"
        status, body = await post(server.path, "/IpamDriver.RequestAddress", b"{not json")
        assert status == 400
        create = (
            b'{"NetworkID": "' + b"e" * 64 + b'", "EndpointID": "' + b"a" * 64 + b'",'
            b' "Interface": {"Address": "10.0.1.5/24"}}'
        )
        await post(server.path, "/NetworkDriver.CreateEndpoint", create)
        # The endpoint's other end goes into the namespace of whoever called: here, us.
        assert host.calls[0][2] == os.getpid()
    finally:
        await server.stop()
    assert not server.path.exists()


async def test_a_socket_left_by_a_killed_daemon_is_replaced(tmp_path):
    stale = socket_path("swl-test", tmp_path)
    stale.write_text("")
    server = PluginServer(NetworkPlugin(FakeHost()), "swl-test", tmp_path)
    await server.start()
    try:
        assert (await post(stale, "/Plugin.Activate"))[0] == 200
    finally:
        await server.stop()


async def test_while_things_are_taken_down_removals_are_answered_and_nothing_else(tmp_path):
    async with teardown_plugins(["a", "b"], tmp_path):
        for name in ("a", "b"):
            path = socket_path(name, tmp_path)
            leave = b'{"NetworkID": "n", "EndpointID": "' + b"x" * 64 + b'"}'
            assert await post(path, "/NetworkDriver.Leave", leave) == (200, {})
            _status, body = await post(path, "/NetworkDriver.Join", leave)
            assert "Err" in body
    assert not list(tmp_path.iterdir())
