"""Undo py_ecc's process-wide recursion limit.

py_ecc (pulled in by web3 through eth-keyfile, and by py-evm) runs
``sys.setrecursionlimit(max(100000, ...))`` when imported. Under that limit the C JSON
decoder no longer stops at a ``RecursionError`` on deeply nested input: ``[`` × 200,000
from a hostile RPC node, proxy or local file overflows the C stack and kills the process.
emrshare decodes such input and does not use the py_ecc code that wants deep recursion
(pairings; our contracts call only ``ecrecover``), so it caps the limit again right
after web3 is imported.
"""

from __future__ import annotations

import sys

__all__ = ["SAFE_RECURSION_LIMIT", "cap_recursion_limit"]

#: Deep enough for everything emrshare runs (py-evm, behind ``LocalNetwork``, asks for
#: 1024 × 12 to reach 1024 EVM call frames), shallow enough that a nested-JSON bomb raises
#: ``RecursionError`` in any thread instead of overflowing the C stack (checked to 20,000).
SAFE_RECURSION_LIMIT = 1024 * 12

#: What py_ecc sets; a limit at or above it is py_ecc's, not the application's.
_PY_ECC_LIMIT = 100_000


def cap_recursion_limit() -> None:
    """Import web3 (and so py_ecc) now, then lower a py_ecc-raised limit to a safe one."""
    import web3  # noqa: F401 - imported for its side effect on the recursion limit

    if sys.getrecursionlimit() >= _PY_ECC_LIMIT:
        sys.setrecursionlimit(SAFE_RECURSION_LIMIT)
