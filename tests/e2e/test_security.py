"""Issue 4 against a lab whose hosts start outside any swarm: the stock CLI forms the swarm
with join tokens, and the manager's port takes only certificates of this swarm's nodes.

The lab's daemons accept node certificates as short as 10 s (``--min-cert-expiry``), so that
renewals happen while the tests watch; the swarm is made with ``--cert-expiry 20s``, and with
its own address pool, subnet size and data path port, which one test checks (issue 13).
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from swarmlet.lab.lab import Lab, docker_cli
from swarmlet.lab.plan import LabConfig
from swarmlet.lab.testing import lab_running
from swarmlet.models import NodeRole
from swarmlet.pki import Credentials, JoinToken, root_digest
from swarmlet.pki.ca import issue, new_key_and_csr, new_root
from swarmlet.pki.tls import client_context
from tests.e2e.conftest import eventually
from tests.tls_probe import HANDSHAKE_FAILED, open_session_blocking

SECURE_LAB = LabConfig.named(
    "swls",
    "192.168.252",
    swarmletd=(*LabConfig().swarmletd, "--min-cert-expiry", "10s"),
)
CERT_EXPIRY = "20s"
# The swarm is made with its own address pool, subnet size and VXLAN port (issue 13, point 5).
ADDRESS_POOL, SUBNET_SIZE, DATA_PATH_PORT = "10.123.0.0/16", 26, 7789
# node3 joins with a second address of its own for the overlays' traffic (--data-path-addr).
NODE3_DATA_ADDR = "192.168.252.113"
IMAGE = "swarmlet-test/busybox:latest"


def docker(
    lab: Lab, host: str, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DOCKER_HOST": lab.host(host).docker_host}
    return subprocess.run(
        [docker_cli(), *args],
        check=False,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def ok(lab: Lab, host: str, *args: str) -> str:
    done = docker(lab, host, *args)
    assert done.returncode == 0, f"docker {' '.join(args)} on {host}: {done.stderr}"
    return done.stdout


@dataclass
class Swarm:
    lab: Lab
    manager_addr: str
    # What `docker swarm join` printed on each host that joined.
    joined: dict[str, str]

    def credentials(self, host: str) -> Credentials:
        return Credentials.of(self.lab.host(host).state_dir)

    def node_id(self, host: str) -> str:
        return ok(self.lab, "node1", "node", "inspect", host, "--format", "{{.ID}}").strip()

    def states(self) -> dict[str, str]:
        rows = ok(self.lab, "node1", "node", "ls", "--format", "{{json .}}").splitlines()
        return {row["Hostname"]: row["Status"] for row in map(json.loads, rows)}


@pytest.fixture(scope="module")
def swarm() -> Iterator[Swarm]:
    """node1 inits through the CLI, node2 and node3 join with the worker token; node4 stays
    out, for the refusals."""
    with lab_running(SECURE_LAB, nodes=4, form_swarm=False) as lab:
        address = lab.host("node1").address
        ok(lab, "node1", "swarm", "init", "--advertise-addr", address, "--cert-expiry", CERT_EXPIRY,
           "--default-addr-pool", ADDRESS_POOL, "--default-addr-pool-mask-length",
           str(SUBNET_SIZE), "--data-path-port", str(DATA_PATH_PORT))  # fmt: skip
        token = ok(lab, "node1", "swarm", "join-token", "-q", "worker").strip()
        manager_addr = f"{address}:2377"
        lab.exec("node3", ["ip", "addr", "add", f"{NODE3_DATA_ADDR}/24", "dev", "eth0"], check=True)
        data_path = ("--data-path-addr", NODE3_DATA_ADDR)
        joined = {
            "node2": ok(lab, "node2", "swarm", "join", "--token", token, manager_addr),
            "node3": ok(lab, "node3", "swarm", "join", "--token", token, *data_path, manager_addr),
        }
        yield Swarm(lab, manager_addr, joined)


def test_the_cli_forms_a_swarm_with_the_worker_token(swarm: Swarm) -> None:
    for host in ("node2", "node3"):
        assert swarm.joined[host].strip() == "This node joined a swarm as a worker."
    eventually(
        lambda: swarm.states() == {"node1": "Ready", "node2": "Ready", "node3": "Ready"},
        what="3 Ready nodes",
    )
    # Each host holds a certificate naming its node and role, from the swarm's one root.
    root = swarm.credentials("node1").trust()
    for host, role in (("node1", NodeRole.MANAGER), ("node2", NodeRole.WORKER)):
        credentials = swarm.credentials(host)
        certificate = credentials.certificate()
        assert (certificate.node_id, certificate.role) == (swarm.node_id(host), role)
        assert credentials.trust() == root
        assert (credentials.node_path.stat().st_mode & 0o777) == 0o600


def test_overlays_take_the_swarms_pool_and_subnet_size_and_vxlan_runs_on_its_port_and_addr(
    swarm: Swarm,
) -> None:
    lab = swarm.lab
    cluster = json.loads(ok(lab, "node1", "info", "--format", "{{json .Swarm.Cluster}}"))
    assert (cluster["DefaultAddrPool"], cluster["SubnetSize"], cluster["DataPathPort"]) == (
        [ADDRESS_POOL],
        SUBNET_SIZE,
        DATA_PATH_PORT,
    )
    pool = ipaddress.ip_network(ADDRESS_POOL)

    def subnet(network: str) -> ipaddress.IPv4Network:
        shown = ok(lab, "node1", "network", "inspect", network, "--format",
                   "{{(index .IPAM.Config 0).Subnet}}")  # fmt: skip
        return ipaddress.IPv4Network(shown.strip())

    ok(lab, "node1", "network", "create", "--driver", "overlay", "pooled")
    services = ["pooled-web", "pooled-client"]
    try:
        for network in ("ingress", "pooled"):
            got = subnet(network)
            assert got.subnet_of(pool), (network, got)
            assert got.prefixlen == SUBNET_SIZE, (network, got)
        quick = ("--detach=true", "--stop-grace-period", "1s", "--network", "pooled")
        web = "mkdir -p /www && echo pooled > /www/index.html && exec httpd -f -p 80 -h /www"
        ok(lab, "node1", "service", "create", "--name", "pooled-web", *quick, "--constraint",
           "node.hostname == node2", IMAGE, "sh", "-c", web)  # fmt: skip
        ok(lab, "node1", "service", "create", "--name", "pooled-client", *quick, "--constraint",
           "node.hostname == node3", IMAGE, "sleep", "1000")  # fmt: skip

        def client() -> str:
            return ok(lab, "node1", "ps", "-q", "--filter",
                      "label=com.docker.swarm.service.name=pooled-client").strip()  # fmt: skip

        container = eventually(client, timeout=60, what="pooled-client running")
        fetch = ("exec", container.split()[0], "timeout", "3", "wget", "-qO-", "http://pooled-web/")
        eventually(
            lambda: docker(lab, "node1", *fetch).stdout.strip() == "pooled",
            timeout=60,
            what="pooled-client on node3 reaching pooled-web on node2",
        )
        # The two hosts' VXLAN devices for the network use the swarm's port, node3's from its
        # data path address (and node2 sends to it there).
        for host in ("node2", "node3"):
            links = lab.exec(host, ["ip", "-d", "link", "show", "type", "vxlan"], check=True)
            assert f"dstport {DATA_PATH_PORT}" in links.stdout, links.stdout
            assert "dstport 4789" not in links.stdout
        links = lab.exec("node3", ["ip", "-d", "link", "show", "type", "vxlan"], check=True)
        assert f"local {NODE3_DATA_ADDR}" in links.stdout, links.stdout
        fdb = lab.exec("node2", ["bridge", "fdb", "show"], check=True).stdout
        assert f"dst {NODE3_DATA_ADDR}" in fdb, fdb
        # The node's advertised address stays the one Swarm shows.
        shown = ok(lab, "node1", "node", "inspect", "node3", "--format", "{{.Status.Addr}}")
        assert shown.strip() == lab.host("node3").address
    finally:
        docker(lab, "node1", "service", "rm", *services)
        eventually(
            lambda: docker(lab, "node1", "network", "rm", "pooled").returncode == 0,
            what="the network removed",
        )


def test_force_new_cluster_on_the_manager_keeps_the_swarm_and_a_worker_refuses_it(
    swarm: Swarm,
) -> None:
    lab = swarm.lab
    before = ok(lab, "node1", "node", "ls", "--format", "{{.ID}} {{.Hostname}}")
    cluster_id = ok(lab, "node1", "info", "--format", "{{.Swarm.Cluster.ID}}")
    done = ok(lab, "node1", "swarm", "init", "--force-new-cluster")
    assert done.startswith(f"Swarm initialized: current node ({swarm.node_id('node1')}) is now a")
    assert ok(lab, "node1", "node", "ls", "--format", "{{.ID}} {{.Hostname}}") == before
    assert ok(lab, "node1", "info", "--format", "{{.Swarm.Cluster.ID}}") == cluster_id
    refused = docker(lab, "node2", "swarm", "init", "--force-new-cluster")
    assert refused.returncode != 0
    assert "This node is not a swarm manager. Worker nodes can't be used" in refused.stderr


def test_wrong_foreign_and_rotated_out_tokens_are_refused(swarm: Swarm) -> None:
    lab = swarm.lab
    worker = JoinToken.parse(ok(lab, "node1", "swarm", "join-token", "-q", "worker").strip())
    other_root = JoinToken.new("1" * 50)

    def join(token: object) -> str:
        done = docker(lab, "node4", "swarm", "join", "--token", str(token), swarm.manager_addr)
        assert done.returncode != 0, done.stdout
        return done.stderr

    assert "A valid join token is necessary to join this cluster" in join(
        JoinToken(worker.digest, "x" * 25)
    )
    assert f"remote CA does not match fingerprint. Expected: {'1' * 50}" in join(other_root)
    assert "invalid join token" in join("SWMTKN-1-not-a-token")
    ok(lab, "node1", "swarm", "join-token", "--rotate", "-q", "worker")
    assert "A valid join token is necessary to join this cluster" in join(worker)
    # Nothing of node4 is in the swarm, and it is still in none.
    assert "node4" not in swarm.states()
    info = ok(lab, "node4", "info", "--format", "{{.Swarm.LocalNodeState}}")
    assert info.strip() == "inactive"
    assert not swarm.credentials("node4").exists()


def test_the_managers_port_takes_only_certificates_of_current_nodes(
    swarm: Swarm, tmp_path: Path
) -> None:
    root = swarm.credentials("node1").trust()
    addr = swarm.manager_addr
    assert open_session_blocking(addr, client_context(root)) == 403

    stranger = Credentials(tmp_path / "stranger")
    key, csr = new_key_and_csr()
    now = datetime.now(UTC)
    foreign = issue(
        new_root(now),
        csr,
        node_id=swarm.node_id("node2"),
        role=NodeRole.WORKER,
        cluster_id="x",
        expiry=timedelta(hours=1),
        now=now,
    )
    stranger.save(trust_pem=root, cert_pem=foreign, key_pem=key)
    assert open_session_blocking(addr, client_context(root, stranger)) == HANDSHAKE_FAILED

    # node3 is removed: its certificate, still in date, opens nothing any more.
    node3 = swarm.credentials("node3")
    copy = Credentials(tmp_path / "node3")
    copy.folder.mkdir()
    copy.node_path.write_bytes(node3.node_path.read_bytes())
    copy.trust_path.write_bytes(node3.trust_path.read_bytes())
    assert open_session_blocking(addr, client_context(root, copy)) == 101
    ok(swarm.lab, "node1", "node", "rm", "--force", "node3")
    assert open_session_blocking(addr, client_context(root, copy)) == 403
    time.sleep(2)
    assert "node3" not in swarm.states()


def test_certificates_are_renewed_before_they_expire_and_sessions_go_on(swarm: Swarm) -> None:
    credentials = swarm.credentials("node2")
    log_file = swarm.lab.host("node2").log_file
    sessions_before = log_file.read_text().count("session open to")
    first = credentials.certificate()
    assert first.not_after - first.not_before <= timedelta(hours=1, seconds=20)
    serials = {first.serial}

    def renewed_twice() -> bool:
        serials.add(credentials.certificate().serial)
        return len(serials) >= 3

    # Each 20 s certificate is renewed 10 to 16 s before it is due.
    eventually(renewed_twice, timeout=60, what="two renewals of node2's certificate")
    assert swarm.states()["node2"] == "Ready"
    assert log_file.read_text().count("session open to") == sessions_before
    # Its keys and CSRs were made by child processes: the worker, which joined and renewed,
    # never loaded cryptography's bindings (swarmlet.pki.keygen).
    pid = int(swarm.lab.host("node2").pid_file.read_text().split()[0])
    mapped = Path(f"/proc/{pid}/maps").read_text()
    assert "cryptography" not in mapped
    assert "_pydantic_core" in mapped  # the check reads the right process


def test_a_root_rotation_completes_with_every_node_staying_ready(swarm: Swarm) -> None:
    lab = swarm.lab
    before = json.loads(ok(lab, "node1", "info", "--format", "{{json .Swarm.Cluster}}"))
    old_root = before["TLSInfo"]["TrustRoot"]
    old_token = ok(lab, "node1", "swarm", "join-token", "-q", "worker").strip()
    members = [host for host, state in swarm.states().items() if state == "Ready"]

    # Without --detach the CLI follows the rotation until every node has moved, then prints
    # the new root.
    rotated = ok(lab, "node1", "swarm", "ca", "--rotate")
    after = json.loads(ok(lab, "node1", "info", "--format", "{{json .Swarm.Cluster}}"))
    new_root_pem = after["TLSInfo"]["TrustRoot"]
    assert new_root_pem != old_root
    assert new_root_pem.strip() in rotated
    assert not after["RootRotationInProgress"]
    new_token = JoinToken.parse(ok(lab, "node1", "swarm", "join-token", "-q", "worker").strip())
    assert new_token.digest == root_digest(new_root_pem)
    assert new_token.secret == JoinToken.parse(old_token).secret

    def trusting_the_new_root_alone() -> list[str]:
        behind = [host for host in members if swarm.credentials(host).trust() != new_root_pem]
        assert not behind, behind
        return members

    eventually(trusting_the_new_root_alone, what="every host trusting the new root alone")
    states = swarm.states()
    assert all(states[host] == "Ready" for host in members), states


def test_an_autolocked_manager_stays_locked_after_a_restart_until_unlocked(swarm: Swarm) -> None:
    lab = swarm.lab
    ok(lab, "node1", "swarm", "update", "--autolock=true")
    key = ok(lab, "node1", "swarm", "unlock-key", "-q").strip()
    assert key.startswith("SWMKEY-1-")
    try:
        assert lab.stop("node1")
        assert lab.start("node1")
        locked = docker(lab, "node1", "node", "ls")
        assert locked.returncode != 0
        assert (
            "Swarm is encrypted and needs to be unlocked before it can be used. Please use"
            ' "docker swarm unlock" to unlock it.'
        ) in locked.stderr
        state = ok(lab, "node1", "info", "--format", "{{.Swarm.LocalNodeState}}")
        assert state.strip() == "locked"

        wrong = docker(lab, "node1", "swarm", "unlock", stdin="SWMKEY-1-" + "A" * 43 + "\n")
        assert wrong.returncode != 0
        assert "swarm could not be unlocked: invalid key provided" in wrong.stderr
        assert docker(lab, "node1", "node", "ls").returncode != 0

        unlocked = docker(lab, "node1", "swarm", "unlock", stdin=key + "\n")
        assert unlocked.returncode == 0, unlocked.stderr
        eventually(lambda: swarm.states().get("node1") == "Ready", what="node1 Ready again")
        eventually(lambda: swarm.states().get("node2") == "Ready", what="node2 back")
        assert ok(lab, "node1", "swarm", "unlock-key", "-q").strip() == key
    finally:
        ok(lab, "node1", "swarm", "update", "--autolock=false")
