"""Which process drives a job: several processes may open one journal.

Each job records the pid of the process driving it. Another process leaves the job
alone while that pid is alive and takes it over once it is dead (killed mid-write).
"""

from __future__ import annotations

from collections.abc import Sequence

from emrshare._process import pid_alive
from emrshare.journal._db import Writes
from emrshare.journal.steps import WriteJob
from emrshare.types import RecordId


class Claims:
    """The jobs this process (``pid``) drives, recorded in the journal's table."""

    def __init__(self, writes: Writes, pid: int) -> None:
        self._writes = writes
        self._pid = pid

    def claimable(self, record_id: RecordId) -> bool:
        """Whether no other live process drives the job."""
        owner = self._writes.owner(record_id)
        return owner is None or owner == self._pid or not pid_alive(owner)

    def claim(self, jobs: Sequence[WriteJob]) -> list[WriteJob]:
        """Take over the claimable ``jobs``; return them."""
        claimed: list[WriteJob] = []
        with self._writes.tx():
            for job in jobs:
                if self.claimable(job.record_id):
                    self._writes.set_owner(job.record_id, self._pid)
                    claimed.append(job)
        return claimed

    def release(self, jobs: Sequence[WriteJob]) -> None:
        """Give ``jobs`` up (those still ours)."""
        with self._writes.tx():
            for job in jobs:
                self._writes.clear_owner(job.record_id, self._pid)
