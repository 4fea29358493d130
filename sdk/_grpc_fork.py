"""grpcio's fork handlers off, before anything imports grpc (pixelrun/__init__.py
imports this module first).

grpcio's C core, with fork support on (its default in these wheels), pauses its threads
before every ``os.fork()`` and restarts them after, in the parent and in the child.
With a live channel in the parent that crashed processes here: SIGSEGV in the parent
or in the child in about one run in seven of tests/sdk/test_fork_relay.py (5 of 43),
in none of 36 runs with the handlers off. pixelrun never uses grpcio in a forked child
(the child streams through a relay process, see `sinks._RelaySink`), so it needs no
handlers. An explicit GRPC_ENABLE_FORK_SUPPORT is kept. grpcio reads the variable when
it is imported: when grpc was imported before pixelrun, its setting stands (import
pixelrun first, or set the variable): `FORK_HANDLERS_ON` then says that grpcio runs its
handlers because nobody chose (a forked child's stream names it in a warning).
"""

from __future__ import annotations

import os
import sys

__all__ = ["FORK_HANDLERS_ON"]

FORK_HANDLERS_ON = "grpc" in sys.modules and "GRPC_ENABLE_FORK_SUPPORT" not in os.environ
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
