"""The manager's port over real TLS on loopback: joining, sessions, certificates."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest

from swarmlet.agent import certificates
from swarmlet.agent.certificates import CertificateRenewer
from swarmlet.clock import SystemClock
from swarmlet.errors import Forbidden, InvalidSpec
from swarmlet.manager.store import Op
from swarmlet.models import SECOND_NS, Node, NodeRole, NodeState, Task, TaskState, TaskStatus
from swarmlet.pki import Credentials, JoinToken
from swarmlet.pki.ca import Issuer, issue, new_key_and_csr, new_root
from swarmlet.pki.keygen import new_key_and_csr_here
from swarmlet.pki.tls import client_context
from swarmlet.protocol import StatusUpdate
from tests.manager.dispatcher.loopback import FakeWorker, Manager, eventually, joined_session, stop
from tests.tls_probe import HANDSHAKE_FAILED, open_session


async def test_joining_gets_a_certificate_naming_the_new_worker(
    manager: Manager, tmp_path: Path
) -> None:
    credentials = Credentials(tmp_path / "n2")
    node_id = await manager.join_worker(credentials)
    certificate = credentials.certificate()
    assert (certificate.node_id, certificate.role, certificate.cluster_id) == (
        node_id,
        NodeRole.WORKER,
        "c1",
    )
    assert manager.store.get(Node, node_id).spec.role == NodeRole.WORKER
    # Only the root this cluster was made with is trusted.
    assert credentials.trust() == manager.cluster.root_ca.ca_cert
    assert (credentials.node_path.stat().st_mode & 0o777) == 0o600


async def test_joining_refuses_bad_tokens_before_anything_is_made(
    manager: Manager, tmp_path: Path
) -> None:
    worker = manager.cluster.join_tokens.worker
    other_ca = str(JoinToken.new(JoinToken.new("0" * 50).digest.replace("0", "1")))
    wrong_secret = str(JoinToken(JoinToken.parse(worker).digest, "x" * 25))
    credentials = Credentials(tmp_path / "n2")
    join = certificates.join
    with pytest.raises(InvalidSpec, match="invalid join token"):
        await join([manager.addr], "SWMTKN-1-nonsense", credentials)
    with pytest.raises(InvalidSpec, match=r"remote CA does not match fingerprint\. Expected: 1+"):
        await join([manager.addr], other_ca, credentials)
    with pytest.raises(InvalidSpec, match="A valid join token is necessary to join this cluster"):
        await join([manager.addr], wrong_secret, credentials)
    # A rotated-out token no longer admits anyone.
    tokens = manager.cluster.join_tokens
    rotated = tokens.replace(worker=str(JoinToken.parse(worker).rotated()))
    await manager.store.commit([Op.update(manager.cluster.replace(join_tokens=rotated))])
    with pytest.raises(InvalidSpec, match="A valid join token is necessary"):
        await join([manager.addr], worker, credentials)
    assert [node.id for node in manager.store.all(Node)] == ["m1"]
    assert not credentials.exists()


async def test_a_session_carries_assignments_and_status_and_survives_a_restart(
    manager: Manager, tmp_path: Path
) -> None:
    worker = FakeWorker()
    node_id, session, running = await joined_session(manager, Credentials(tmp_path / "n2"), worker)
    assert manager.store.get(Node, node_id).status.state == NodeState.READY

    assigned = TaskStatus(state=TaskState.ASSIGNED)
    await manager.store.commit(
        [Op.create(Task(id="t1", service_id="s", node_id=node_id, status=assigned))]
    )
    await eventually(lambda: worker.assigned and worker.assigned[-1] == ["t1"])

    update = StatusUpdate(task_id="t1", status=TaskStatus(state=TaskState.RUNNING))
    worker.last["t1"] = update
    await session.report([update])
    await eventually(lambda: manager.store.get(Task, "t1").status.state == TaskState.RUNNING)

    # The manager goes away; what the agent learns meanwhile is resent when it is back.
    await manager.stop()
    await eventually(lambda: not session.connected.is_set())
    worker.last["t1"] = StatusUpdate(
        task_id="t1", status=TaskStatus(state=TaskState.FAILED, err="task: non-zero exit (1)")
    )
    await manager.start()
    await eventually(lambda: manager.store.get(Task, "t1").status.state == TaskState.FAILED)
    await stop(running)


async def test_the_worker_is_given_the_whole_set_as_the_session_is_sent_its_changes(
    manager: Manager, tmp_path: Path
) -> None:
    worker = FakeWorker()
    node_id, _, running = await joined_session(manager, Credentials(tmp_path / "n2"), worker)
    assigned = TaskStatus(state=TaskState.ASSIGNED)
    for task_id in ("t1", "t2", "t3"):
        await manager.store.commit(
            [Op.create(Task(id=task_id, service_id="s", node_id=node_id, status=assigned))]
        )
        await eventually(lambda task_id=task_id: worker.assigned and task_id in worker.assigned[-1])
    assert sorted(worker.assigned[-1]) == ["t1", "t2", "t3"]
    await manager.store.commit([Op.delete(manager.store.get(Task, "t2"))])
    await eventually(lambda: sorted(worker.assigned[-1]) == ["t1", "t3"])
    # A new session starts from the whole set.
    await manager.stop()
    await manager.store.commit([Op.delete(manager.store.get(Task, "t1"))])
    await manager.start()
    await eventually(lambda: worker.assigned[-1] == ["t3"])
    await stop(running)


async def test_a_session_needs_an_in_date_certificate_of_this_swarm(
    manager: Manager, tmp_path: Path
) -> None:
    root = manager.cluster.root_ca.ca_cert
    assert await open_session(manager.addr, client_context(root)) == 403

    # A certificate from another CA fails the handshake.
    stranger = Credentials(tmp_path / "stranger")
    other = new_root(manager.clock.now())
    key, csr = new_key_and_csr()
    cert = issue(
        other,
        csr,
        node_id="m1",
        role=NodeRole.MANAGER,
        cluster_id="c1",
        expiry=timedelta(days=1),
        now=manager.clock.now(),
    )
    stranger.save(trust_pem=root, cert_pem=cert, key_pem=key)
    assert await open_session(manager.addr, client_context(root, stranger)) == HANDSHAKE_FAILED

    # So does an expired one from the right CA.
    expired = Credentials(tmp_path / "expired")
    cluster = manager.cluster
    issuer_cert, issuer_key = cluster.root_ca.ca_cert, cluster.root_ca.ca_key
    key, csr = new_key_and_csr()
    cert = issue(
        Issuer(issuer_cert, issuer_key),
        csr,
        node_id="m1",
        role=NodeRole.MANAGER,
        cluster_id="c1",
        expiry=timedelta(minutes=1),
        now=manager.clock.now() - timedelta(hours=3),
    )
    expired.save(trust_pem=root, cert_pem=cert, key_pem=key)
    assert await open_session(manager.addr, client_context(root, expired)) == HANDSHAKE_FAILED
    assert await open_session(manager.addr, client_context(root, manager.credentials)) == 101


async def test_a_removed_nodes_session_ends_and_its_certificate_is_refused(
    manager: Manager, tmp_path: Path
) -> None:
    credentials = Credentials(tmp_path / "n2")
    node_id, session, running = await joined_session(manager, credentials, FakeWorker())

    await manager.store.commit([Op.delete(manager.store.get(Node, node_id))])
    await eventually(lambda: not session.connected.is_set())
    tls = client_context(credentials.trust(), credentials)
    assert await open_session(manager.addr, tls) == 403
    renewer = CertificateRenewer(credentials, [manager.addr], SystemClock())
    with pytest.raises(Forbidden, match=f"node {node_id} is not a member of this swarm"):
        await renewer.renew()
    await stop(running)
    assert not session.connected.is_set()


async def test_a_renewal_gives_a_new_certificate_and_the_session_goes_on(
    manager: Manager, tmp_path: Path
) -> None:
    credentials = Credentials(tmp_path / "n2")
    node_id, session, running = await joined_session(manager, credentials, FakeWorker())
    first = credentials.certificate()

    told: list[int] = []

    async def renewed_callback() -> None:
        told.append(credentials.certificate().serial)

    renewer = CertificateRenewer(
        credentials, [manager.addr], SystemClock(), renewed=renewed_callback
    )
    await renewer.renew()
    renewed = credentials.certificate()
    # The agent is told, once the new certificate is in place (it reports its TLS identity).
    assert told == [renewed.serial]
    assert renewed.node_id == node_id
    assert renewed.serial != first.serial
    assert session.connected.is_set()
    assert await open_session(manager.addr, client_context(credentials.trust(), credentials)) == 101
    await stop(running)


async def test_the_renewer_renews_before_the_certificate_expires(
    manager: Manager, tmp_path: Path
) -> None:
    cluster = manager.cluster
    short = cluster.spec.replace(
        ca_config=cluster.spec.ca_config.replace(node_cert_expiry=3 * SECOND_NS)
    )
    await manager.store.commit([Op.update(cluster.replace(spec=short))])
    credentials = Credentials(tmp_path / "n2")
    await manager.join_worker(credentials)
    first = credentials.certificate()
    # The key made in this process: a child process's (the agent's default, tests/pki) takes
    # over a second on a busy machine, and a renewal that late presents an expired certificate.
    renewer = CertificateRenewer(
        credentials, [manager.addr], SystemClock(), new_key_and_csr=new_key_and_csr_here
    )
    running = asyncio.create_task(renewer.run())
    try:
        # Renewed between 1.5 s and 2.4 s after the join: before the 3 s are up, every time.
        await eventually(lambda: renewer.renewed >= 2, seconds=6)
        assert credentials.certificate().not_after > first.not_after
    finally:
        await stop(running)
