"""nftables in this process: libnftables, the library the ``nft`` command is made of, through
ctypes, for ``nft``'s driver (``swarmlet.net.nft``).

Why: a host writes a task's VIP table into the task's namespace when it joins, and again in
every local namespace on a network whose services changed. While 50 replicas of a service
start on three hosts that is several hundred tables (each new backend changes its service's
table), and each was a command started (``nsenter`` running ``nft``): about 7.6 ms of CPU
against 1.4 ms in this process, on a machine whose CPUs the engine starting the containers
needs. The library is ``libnftables1``, which the ``nft`` command itself depends on; where it
cannot be loaded, the driver runs the command.

A context is made per ruleset, on the thread that applies it: its netlink socket belongs to
that thread's network namespace when it is made, which is how a ruleset lands in a task's
namespace (``netlink.in_netns``). One ruleset at a time in the process: libnftables keeps
some state of its own between contexts.
"""

from __future__ import annotations

import ctypes
import functools
import threading
from dataclasses import dataclass

LIBRARY = "libnftables.so.1"

# nftables.h's flags.
NFT_CTX_DEFAULT = 0
NFT_CTX_OUTPUT_JSON = 1 << 4  # also: read the input as JSON

# One ruleset at a time in the process (see the module's docstring).
_ONE_AT_A_TIME = threading.Lock()


@dataclass(frozen=True)
class Refused:
    """What libnftables said when it refused a ruleset."""

    message: str


class Library:
    """libnftables' few functions the driver calls."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        lib.nft_ctx_new.restype = ctypes.c_void_p
        lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
        lib.nft_ctx_free.restype = None
        lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_output_set_flags.restype = None
        lib.nft_ctx_output_set_flags.argtypes = [ctypes.c_void_p, ctypes.c_uint]
        lib.nft_ctx_buffer_output.restype = ctypes.c_int
        lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_buffer_error.restype = ctypes.c_int
        lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
        lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
        lib.nft_run_cmd_from_buffer.restype = ctypes.c_int
        lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        self._lib = lib

    def apply(self, document: bytes) -> Refused | None:
        """Apply a JSON ruleset in the calling thread's network namespace, as one transaction
        (as ``nft -j -f -`` does); what was refused, or None. Blocking."""
        lib = self._lib
        with _ONE_AT_A_TIME:
            ctx = lib.nft_ctx_new(NFT_CTX_DEFAULT)
            if not ctx:
                return Refused("libnftables could not make a context")
            try:
                lib.nft_ctx_output_set_flags(ctx, NFT_CTX_OUTPUT_JSON)
                # Kept in buffers rather than printed on this process's stdout and stderr.
                lib.nft_ctx_buffer_output(ctx)
                lib.nft_ctx_buffer_error(ctx)
                code = lib.nft_run_cmd_from_buffer(ctx, document)
                if code == 0:
                    return None
                said = lib.nft_ctx_get_error_buffer(ctx) or b""
                return Refused(said.decode(errors="replace").strip())
            finally:
                lib.nft_ctx_free(ctx)


@functools.cache
def library() -> Library | None:
    """The library, loaded on first use; None where it cannot be (the command is run then)."""
    try:
        return Library(ctypes.CDLL(LIBRARY))
    except (OSError, AttributeError):
        return None
