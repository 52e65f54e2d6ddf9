"""The member's process: started as ``swarmletd``'s child, restarted when it dies, stopped
when ``run`` is cancelled.

etcd runs in a process group of its own (a signal sent to ``swarmletd``'s group, a terminal's
Ctrl-C, does not reach it) with its output appended to ``<state dir>/etcd.log``. It is
signalled by its PID alone: SIGTERM, then SIGKILL after a grace. Restarts wait
``config.restart_delay`` on the injected clock.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import signal
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from swarmlet.clock import Clock
from swarmlet.errors import Unavailable
from swarmlet.manager.etcd.config import MemberConfig, etcd_argv, failures_after, restart_delay

if TYPE_CHECKING:
    from swarmlet.manager.etcd.client import EtcdClient

log = logging.getLogger(__name__)

STOP_GRACE_S = 10.0
HEALTH_POLL_S = 0.1


class Supervisor:
    def __init__(
        self,
        config: MemberConfig,
        clock: Clock,
        *,
        binary: str = "etcd",
        stop_grace_s: float = STOP_GRACE_S,
    ) -> None:
        self._config = config
        self._clock = clock
        self._binary = binary
        self._stop_grace_s = stop_grace_s
        self._process: asyncio.subprocess.Process | None = None
        self._starts = 0

    @property
    def pid(self) -> int | None:
        """The running member's PID; None between a death and its restart."""
        return self._process.pid if self._process is not None else None

    @property
    def starts(self) -> int:
        """How many times the member was started (1 before any restart)."""
        return self._starts

    async def run(self) -> None:
        """Run the member until cancelled, restarting it whenever it ends; cancelling stops
        it. Raises Unavailable when ``etcd`` cannot be started at all."""
        failures = 0
        try:
            while True:
                process = await self._start()
                started = self._clock.monotonic()
                code = await process.wait()
                self._process = None
                failures = failures_after(failures, self._clock.monotonic() - started)
                delay = restart_delay(failures)
                log.warning(
                    "etcd member %s (pid %d) exited with %d; restarting in %.1f s",
                    self._config.name,
                    process.pid,
                    code,
                    delay,
                )
                await self._clock.sleep(delay)
        finally:
            await self._stop()

    async def _start(self) -> asyncio.subprocess.Process:
        config = self._config
        config.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        # The member ends with the swarmletd that started it (SIGTERM when this process dies,
        # even by SIGKILL): a restarted swarmletd starts its member again on the same ports
        # and data, and no member outlives its manager. util-linux's setpriv sets it between
        # fork and exec, where Python's asyncio cannot.
        argv = ["setpriv", "--pdeathsig", "TERM", *etcd_argv(config, self._binary)]
        if shutil.which(self._binary) is None:
            raise Unavailable(f"cannot start {self._binary}: no such program")
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        with config.log_path.open("a") as log_file:
            log_file.write(f"--- {stamp} swarmletd starts: {' '.join(argv)}\n")
            log_file.flush()
            try:
                process = await asyncio.create_subprocess_exec(
                    *argv,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=log_file,
                    process_group=0,
                )
            except OSError as exc:
                raise Unavailable(f"cannot start {self._binary}: {exc}") from exc
        self._process = process
        self._starts += 1
        log.info("etcd member %s started (pid %d)", config.name, process.pid)
        return process

    async def _stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        # By its PID only: our child, so the PID cannot have been reused before we reap it.
        process.send_signal(signal.SIGTERM)
        exited = asyncio.ensure_future(process.wait())
        grace = asyncio.ensure_future(self._clock.sleep(self._stop_grace_s))
        try:
            await asyncio.wait({exited, grace}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            grace.cancel()
        if not exited.done():
            log.warning("etcd member %s ignored SIGTERM; killing it", self._config.name)
            process.send_signal(signal.SIGKILL)
        await exited


async def wait_healthy(client: EtcdClient, clock: Clock, timeout_s: float) -> None:
    """Return once the member answers healthy; Unavailable after ``timeout_s``."""
    deadline = clock.monotonic() + timeout_s
    while not await client.healthy():
        if clock.monotonic() >= deadline:
            raise Unavailable(f"etcd did not become healthy within {timeout_s:g} s")
        await clock.sleep(HEALTH_POLL_S)
