"""``EngineClient.container_logs`` on the real engine: its multiplexed stream (and a TTY
container's raw one) read into messages with their stream, timestamp and text."""

from __future__ import annotations

import re

from swarmlet.agent.engine import EngineClient
from swarmlet.agent.logframes import STDERR, STDOUT, parse_message

IMAGE = "swarmlet-test/busybox:latest"
STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z")


async def run(docker: EngineClient, labels: dict[str, str], script: str, tty: bool = False) -> str:
    config = {"Image": IMAGE, "Cmd": ["sh", "-c", script], "Labels": labels, "Tty": tty}
    # Named after the test's label, which the container keeps: the fixture removes it after.
    name = f"swl-logs-{next(iter(labels.values()))[:12]}"
    container = await docker.create_container(name, config, {})
    await docker.start_container(container)
    return container


async def read(
    docker: EngineClient, container: str, **options: object
) -> list[tuple[int, str, bytes]]:
    found = []
    arguments = {"follow": False, "tail": None, "since": "", "streams": "stdout,stderr", **options}
    async for frames in docker.container_logs(container, **arguments):  # type: ignore[arg-type]
        for frame in frames:
            message = parse_message(frame.data)
            found.append((frame.stream, message.timestamp, message.text))
    return found


async def test_stdout_and_stderr_come_apart_with_timestamps(docker, test_labels) -> None:
    container = await run(docker, dict(test_labels), "echo out; echo err >&2; echo last")
    await docker.wait_container(container)
    found = await read(docker, container)
    # Each stream in its order (the engine copies the two streams apart).
    assert [text for stream, _, text in found if stream == STDOUT] == [b"out\n", b"last\n"]
    assert [text for stream, _, text in found if stream == STDERR] == [b"err\n"]
    assert all(STAMP.fullmatch(stamp) for _, stamp, _ in found)
    # The last line of the log, whichever its stream.
    assert len(await read(docker, container, tail=1)) == 1
    assert [text for _, _, text in await read(docker, container, streams="stderr")] == [b"err\n"]


async def test_a_tty_containers_lines_are_stdout(docker, test_labels) -> None:
    container = await run(docker, dict(test_labels), "echo one; echo two", tty=True)
    await docker.wait_container(container)
    found = await read(docker, container)
    assert [(stream, text.rstrip(b"\r\n")) for stream, _, text in found] == [
        (STDOUT, b"one"),
        (STDOUT, b"two"),
    ]


async def test_following_reads_until_the_container_exits(docker, test_labels) -> None:
    script = "for i in 1 2 3; do echo tick $i; sleep 0.3; done"
    container = await run(docker, dict(test_labels), script)
    found = await read(docker, container, follow=True)
    assert [text for _, _, text in found] == [b"tick 1\n", b"tick 2\n", b"tick 3\n"]
