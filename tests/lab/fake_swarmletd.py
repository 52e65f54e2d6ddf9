"""A stand-in for swarmletd, to drive the lab before (or without) the real daemon.

It takes swarmletd's flags and answers just what `Lab.up` and `docker node ls` ask: `/_ping`,
`POST /swarm/init`, `GET /swarm`, `POST /swarm/join`, `GET /nodes`, `GET /info`. A join really
crosses the lab's network: the joining host POSTs its hostname to the manager's ListenAddr.

    SWARMLET_LAB_SWARMLETD="$PWD/.venv/bin/python $PWD/tests/lab/fake_swarmletd.py" pytest tests/lab
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import aiohttp
from aiohttp import web


def make_app(hostname: str) -> web.Application:
    nodes: list[dict[str, Any]] = []
    serving: list[web.AppRunner] = []  # the manager's TCP listener, kept while it serves
    swarm_state = ["inactive"]  # what /_ping's Swarm header says; the docker CLI reads it

    def node(name: str) -> dict[str, Any]:
        status = {"State": "ready"}
        return {"ID": f"fake-{name}", "Description": {"Hostname": name}, "Status": status}

    async def ping(_: web.Request) -> web.Response:
        return web.Response(text="OK", headers={"Api-Version": "1.41", "Swarm": swarm_state[0]})

    async def init(request: web.Request) -> web.Response:
        body = await request.json()
        host, port = body["ListenAddr"].rsplit(":", 1)
        manager = web.Application()
        manager.router.add_post("/join", register)
        runner = web.AppRunner(manager)
        await runner.setup()
        await web.TCPSite(runner, host, int(port)).start()
        serving.append(runner)
        nodes.append(node(hostname))
        swarm_state[0] = "active/manager"
        return web.json_response(f"fake-{hostname}")

    async def register(request: web.Request) -> web.Response:
        nodes.append(node((await request.json())["Hostname"]))
        return web.json_response({})

    async def swarm(_: web.Request) -> web.Response:
        return web.json_response({"JoinTokens": {"Worker": "SWMTKN-1-fake-worker"}})

    async def join(request: web.Request) -> web.Response:
        body = await request.json()
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"http://{body['RemoteAddrs'][0]}/join", json={"Hostname": hostname}),
        ):
            pass
        swarm_state[0] = "active/worker"
        return web.Response(status=200)

    async def list_nodes(_: web.Request) -> web.Response:
        return web.json_response(nodes)

    async def info(_: web.Request) -> web.Response:
        return web.json_response({"Swarm": {"NodeID": f"fake-{hostname}"}})

    app = web.Application()
    # The docker CLI asks for /v1.41/nodes; serve every path bare and versioned.
    for prefix in ("", "/{version:v[0-9.]+}"):
        app.router.add_route("*", f"{prefix}/_ping", ping)
        app.router.add_post(f"{prefix}/swarm/init", init)
        app.router.add_get(f"{prefix}/swarm", swarm)
        app.router.add_post(f"{prefix}/swarm/join", join)
        app.router.add_get(f"{prefix}/nodes", list_nodes)
        app.router.add_get(f"{prefix}/info", info)
    return app


async def serve(args: argparse.Namespace) -> None:
    runner = web.AppRunner(make_app(args.hostname))
    await runner.setup()
    for url in args.host:
        await web.UnixSite(runner, url.removeprefix("unix://")).start()
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--host", action="append", required=True)
    parser.add_argument("--docker-host", required=True)
    parser.add_argument("--hostname", required=True)
    parser.add_argument("--container-label", action="append", default=[])
    parser.add_argument("--network-plugin")
    parser.add_argument("--shared-engine", action="store_true")
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
