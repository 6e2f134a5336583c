"""Run only by test_harness.py: starts both nodes, reports their PIDs, then waits."""

from __future__ import annotations

import os
import time
from pathlib import Path

from emrshare.devnet import DevNode


def test_hold(anvil: DevNode, ganache: DevNode) -> None:
    pids = [str(n._proc.pid) for n in (anvil, ganache) if n._proc]
    Path(os.environ["EMRSHARE_PROBE_PIDS"]).write_text(" ".join(pids))
    time.sleep(120)
