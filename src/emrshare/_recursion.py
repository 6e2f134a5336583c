"""Undo py_ecc's process-wide recursion limit.

py_ecc (pulled in by py-evm, and by web3 through eth-keyfile 0.10 and newer) runs
``sys.setrecursionlimit(max(100000, ...))`` when its package is imported. Under that limit
the C JSON decoder no longer stops at a ``RecursionError`` on deeply nested input: ``[`` × 200,000
from a hostile RPC node, proxy or local file overflows the C stack and kills the process.
emrshare decodes such input and does not use the py_ecc code that wants deep recursion
(pairings; our contracts call only ``ecrecover``), so it imports the ``py_ecc`` package
itself (cheap: its submodules load lazily), then caps the limit: a later import of py-evm
or of a py_ecc submodule does not run that line again.
"""

from __future__ import annotations

import contextlib
import sys

__all__ = ["SAFE_RECURSION_LIMIT", "cap_recursion_limit"]

#: Deep enough for everything emrshare runs (py-evm, behind ``LocalNetwork``, asks for
#: 1024 × 12 to reach 1024 EVM call frames), shallow enough that a nested-JSON bomb raises
#: ``RecursionError`` in any thread instead of overflowing the C stack (checked to 20,000).
SAFE_RECURSION_LIMIT = 1024 * 12

#: What py_ecc sets; a limit at or above it is py_ecc's, not the application's.
_PY_ECC_LIMIT = 100_000


def cap_recursion_limit() -> None:
    """Import web3 and the py_ecc package now, then lower a py_ecc-raised limit to a safe
    one."""
    import web3  # noqa: F401 - imported for its side effect on the recursion limit

    with contextlib.suppress(ImportError):  # py_ecc comes with py-evm (the "local" extra)
        import py_ecc  # noqa: F401 - its __init__ raises the limit, once per process
    if sys.getrecursionlimit() >= _PY_ECC_LIMIT:
        sys.setrecursionlimit(SAFE_RECURSION_LIMIT)
