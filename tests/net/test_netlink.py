"""The executor's edges: kernel errors translated, and work done in another namespace on a
thread of its own (that one needs root and makes a ``swlt-dp-…`` namespace)."""

from __future__ import annotations

import errno
import os
import threading
import uuid
from collections.abc import Iterator

import pytest

from swarmlet.errors import NameConflict, NotFound, Unavailable
from swarmlet.net.netlink import in_netns, netlink_errors, tolerating, translate
from swarmlet.net.rtnetlink import NetlinkError
from tests.net.dataplane_lab import PREFIX, require_kernel, sh


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (NetlinkError(errno.ENODEV), NotFound),
        (NetlinkError(errno.ENOENT), NotFound),
        (OSError(errno.ESRCH, "No such process"), NotFound),
        (FileNotFoundError(errno.ENOENT, "gone"), NotFound),
        (NetlinkError(errno.EEXIST), NameConflict),
        (NetlinkError(errno.EPERM), Unavailable),
        (PermissionError(errno.EACCES, "denied"), Unavailable),
    ],
)
def test_kernel_errors_become_swarmlet_errors(error, kind):
    translated = translate(error, "making swlbr4097")
    assert type(translated) is kind
    assert translated.message == f"making swlbr4097: {os.strerror(error.args[0])}"


def test_the_translation_keeps_the_cause():
    cause = NetlinkError(errno.ENODEV)
    with pytest.raises(NotFound) as raised, netlink_errors("deleting swlvx4097"):
        raise cause
    assert raised.value.__cause__ is cause


def test_tolerated_errors_are_ignored_and_others_are_not():
    with tolerating(errno.EEXIST):
        raise NetlinkError(errno.EEXIST)
    with pytest.raises(NetlinkError), tolerating(errno.EEXIST):
        raise NetlinkError(errno.ENODEV)


@pytest.fixture
def scratch_netns() -> Iterator[str]:
    require_kernel()
    name = f"{PREFIX}{uuid.uuid4().hex[:6]}-n"
    sh("ip", "netns", "add", name)
    try:
        yield name
    finally:
        sh("ip", "netns", "del", name, check=False)


def test_work_in_another_namespace_runs_on_a_thread_that_ends_with_it(scratch_netns):
    path = f"/run/netns/{scratch_netns}"
    own = os.readlink("/proc/thread-self/ns/net")

    def where() -> tuple[str, int]:
        return os.readlink("/proc/thread-self/ns/net"), threading.get_ident()

    namespace, thread = in_netns(path, where)
    assert namespace == f"net:[{os.stat(path).st_ino}]"
    assert thread != threading.get_ident()
    assert os.readlink("/proc/thread-self/ns/net") == own

    def fail() -> None:
        raise NetlinkError(errno.ENODEV)

    with pytest.raises(NetlinkError):
        in_netns(path, fail)
    with pytest.raises(FileNotFoundError):
        in_netns(f"/run/netns/{scratch_netns}-none", where)
