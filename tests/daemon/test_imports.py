"""What a worker's ``swarmletd`` keeps in memory: the modules its entry point imports.

A worker runs the agent and serves the Engine API (``swarmlet.api``); the manager's packages
(its store, controllers, CA, dispatcher, and the swarm's API handlers) are imported only where
a node runs or becomes a manager, and none of the libraries a manager alone needs
(cryptography, SQLite) nor test frameworks are loaded; a manager on SQLite loads no etcd client.
Each check runs in a fresh interpreter: the test process has imported everything already.
"""

from __future__ import annotations

import json
import subprocess
import sys


def _modules_after(code: str) -> set[str]:
    program = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True, timeout=60
    )
    return set(json.loads(result.stdout.splitlines()[-1]))


def _within(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == package or module.startswith(package + ".") for package in packages)


def test_the_worker_entry_point_leaves_the_manager_out() -> None:
    modules = _modules_after("import swarmlet.daemon")
    manager = {m for m in modules if _within(m, ("swarmlet.manager",))}
    assert manager <= {"swarmlet.manager"}  # at most the empty package
    assert "swarmlet.api.app" in modules  # the API is served on every node


def test_the_worker_entry_point_loads_neither_the_ca_nor_the_durable_store() -> None:
    # cryptography's bindings and SQLite: a manager's, some 11 MiB of a worker's memory.
    modules = _modules_after("import swarmlet.daemon")
    assert "swarmlet.pki.certificate" in modules  # certificates are read on every node
    heavy = (
        "cryptography",
        "sqlite3",
        "_sqlite3",
        "swarmlet.pki.ca",
        "swarmlet.manager.store.sqlite",
    )
    assert {m for m in modules if _within(m, heavy)} == set()


def test_the_worker_entry_point_loads_no_test_framework_and_no_netlink_library() -> None:
    # Netlink is swarmlet.net.rtnetlink's, on a socket: no pyroute2 and what it brought with
    # it (unittest.mock, multiprocessing).
    modules = _modules_after("import swarmlet.daemon")
    assert "swarmlet.net.rtnetlink" in modules
    unused = ("pyroute2", "unittest", "multiprocessing")
    assert {m for m in modules if _within(m, unused)} == set()


def test_the_worker_entry_point_loads_no_cli_library_and_no_dns_client() -> None:
    # swarmletd reads its command line with argparse (aiohttp imports it anyway); dnspython's
    # client is loaded by an embedded DNS that forwards upstream, which none does by default.
    modules = _modules_after("import swarmlet.daemon")
    assert "dns.message" in modules  # the embedded DNS server's
    assert {m for m in modules if _within(m, ("click", "rich", "dns.asyncquery"))} == set()


def test_a_manager_on_sqlite_loads_no_etcd_client() -> None:
    # gRPC and etcd's messages (about 22 MiB) are loaded once the store moves to etcd: a swarm
    # of one manager never needs them.
    # What a manager's swarmletd runs on SQLite: the manager, its store, the API's manager
    # routes (etcd's join among them).
    modules = _modules_after(
        "import swarmlet.daemon.control, swarmlet.manager.manager, swarmlet.manager.store.sqlite,"
        " swarmlet.manager.etcd.join, swarmlet.manager.api.forwarded, swarmlet.daemon.etcd_store"
    )
    heavy = ("grpc", "aetcd", "google.protobuf", "swarmlet.manager.etcd.client")
    assert {m for m in modules if _within(m, heavy)} == set()
