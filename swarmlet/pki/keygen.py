"""A node's new private key and CSR, made in a short-lived child process.

A worker makes one when it joins and at each renewal of its certificate (weeks apart with
Swarm's 90-day default): to make them in its own process it would have to import
``cryptography``, whose bindings then stay resident for as long as it runs, some 9 MiB of an
agent's 60 MB (benchmarks/scale.py). The child (``python -m swarmlet.pki.keygen``) prints
both as JSON on its standard output and ends; the key goes through a pipe, never a file.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable

from swarmlet.errors import Unavailable

# How a node gets a new key and CSR (both PEM) when it asks for a certificate.
KeyMaker = Callable[[], Awaitable[tuple[str, str]]]


async def new_key_and_csr_apart() -> tuple[str, str]:
    """What ``swarmlet.pki.ca.new_key_and_csr`` returns, made by a child process.

    Raises Unavailable when the child cannot run or fails.
    """
    try:
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-I",  # none of the environment's Python settings, nor the working directory
            "-m",
            __name__,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await child.communicate()
    except OSError as exc:
        raise Unavailable(f"cannot make a key and CSR: {exc}") from exc
    if child.returncode != 0:
        reason = err.decode(errors="replace").strip().splitlines()[-1:] or ["no message"]
        raise Unavailable(f"cannot make a key and CSR: exit {child.returncode}: {reason[0]}")
    try:
        made = json.loads(out)
        return str(made["key"]), str(made["csr"])
    except (ValueError, TypeError, KeyError) as exc:
        raise Unavailable(f"cannot make a key and CSR: the child printed {out[:80]!r}") from exc


async def new_key_and_csr_here() -> tuple[str, str]:
    """The same in this process: for one that holds ``cryptography`` anyway (a manager, the
    simulator of a thousand nodes, whose joins a child each would slow down)."""
    from swarmlet.pki.ca import new_key_and_csr

    return new_key_and_csr()


def main() -> None:
    from swarmlet.pki.ca import new_key_and_csr  # the one import this process exists for

    key, csr = new_key_and_csr()
    json.dump({"key": key, "csr": csr}, sys.stdout)


if __name__ == "__main__":
    main()
