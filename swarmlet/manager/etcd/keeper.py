"""A lease kept alive by a thread of its own, whatever the event loop is doing.

A manager's loop can be busy for seconds at a time: a scheduler's pass over 10,000 tasks, or a
follower reading a transaction of thousands of objects (loops of the three managers of
``benchmarks/scale_managers.py`` stalled for 1 to 2.7 s at a time). A lease of 2 s renewed
from that loop then lapses although its manager is alive, and the leadership passed from
manager to manager all through the run. The keeper renews it from a thread, through gRPC's
blocking API on a channel of its own, each renewal given until the lease would have run out
(not one period: a member whose CPU is all taken answers late, but in time); the election
reads when the last renewal etcd granted was asked for (``renewed_at``, on
``time.monotonic``), and decides on the loop as before.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import grpc
from aetcd.rpc import rpc_pb2 as pb
from aetcd.rpc import rpc_pb2_grpc as stubs


class LeaseKeeper:
    """Renews ``lease`` every ``period`` seconds on ``channel`` (closed when it stops), each
    renewal given ``within`` seconds, until ``stop``, or until etcd says the lease is gone
    (``expired``)."""

    def __init__(
        self,
        channel: grpc.Channel,
        lease: int,
        period: float,
        within: float,
        metadata: Sequence[tuple[str, str]] = (),
    ) -> None:
        self._channel = channel
        self._lease = lease
        self._period = period
        self._within = within
        self._metadata = tuple(metadata)
        # Written by the thread, read by the loop: each a single assignment.
        self.renewed_at = time.monotonic()  # the lease was granted just now
        self.expired = False
        self.error = ""  # why the last renewal failed ("" when it did not)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"etcd-lease-{lease:x}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Renew no more (the thread ends after the renewal it may be in)."""
        self._stopping.set()

    def _run(self) -> None:
        stub = stubs.LeaseStub(self._channel)
        try:
            while not self._stopping.wait(self._period):
                asked = time.monotonic()
                remaining = self._renew(stub)
                if remaining is None:
                    continue
                if remaining <= 0:
                    self.expired = True
                    return
                self.renewed_at = asked
                self.error = ""
        finally:
            self._channel.close()

    def _renew(self, stub: stubs.LeaseStub) -> int | None:
        """One renewal: the seconds the lease has left (0: gone), None when it failed.
        etcd's keepalive is a stream; one request and its answer renew the lease once."""
        request = pb.LeaseKeepAliveRequest(ID=self._lease)
        try:
            answers = stub.LeaseKeepAlive(
                iter([request]), timeout=self._within, metadata=self._metadata
            )
            answer = next(answers, None)
            answers.cancel()
        except grpc.RpcError as exc:
            self.error = str(exc.details() or exc.code())
            return None
        if answer is None:
            self.error = "the keepalive stream ended unanswered"
            return None
        return int(answer.TTL)
