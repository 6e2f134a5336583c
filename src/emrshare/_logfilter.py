"""Copy a development node's output to its log, leaving out the lines that hold secrets.

anvil and ganache print a banner with every development account's private key and the
wallet mnemonic. This filter sits between the node's stdout (its stdin) and the log (its
stdout) and drops those lines, so the keys are never written to any file. Run as a
script (``python -I _logfilter.py``), it imports nothing of emrshare: it must start fast
and hold nothing. Extra secrets to leave out come one per line in
``$EMRSHARE_LOG_REDACT``.

It ignores SIGINT, SIGTERM and SIGHUP: a node's process group is stopped as a whole, and
the filter must keep draining until the node closes its output (EOF), or the node would
die of a broken pipe while saving its state.
"""

from __future__ import annotations

import os
import re
import signal
import sys

# "(3) 0x7c85…" in anvil's and ganache's "Private Keys" list.
_KEY_LINE = re.compile(rb"^\s*\(\d+\)\s+(0x)?[0-9a-fA-F]{64}\s*$")
# "Mnemonic: test test …" in the "Wallet" (anvil) or "HD Wallet" (ganache) section.
_MNEMONIC = re.compile(rb"mnemonic", re.IGNORECASE)
REDACTED = b"[a line holding a development secret was left out of this log]\n"


def _secrets() -> list[bytes]:
    raw = os.environ.get("EMRSHARE_LOG_REDACT", "")
    found = set()
    for s in raw.splitlines():
        s = s.strip().lower()
        if s:
            found.add(s.encode())
            if s.startswith("0x"):
                found.add(s[2:].encode())
    return sorted(found, key=len, reverse=True)


def keep(line: bytes, secrets: list[bytes]) -> bytes:
    """``line`` itself, or :data:`REDACTED` if it holds a key or the mnemonic."""
    lowered = line.lower()
    if _KEY_LINE.match(line) or _MNEMONIC.search(line) or any(s in lowered for s in secrets):
        return REDACTED
    return line


def main() -> None:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    secrets = _secrets()
    out = sys.stdout.buffer
    for line in sys.stdin.buffer:
        out.write(keep(line, secrets))
        out.flush()


if __name__ == "__main__":
    main()
