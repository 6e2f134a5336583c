"""Group commit for the audit journal: many concurrent serves, one fsync.

Every serve must be durable before its response leaves. With one fsync per request the
disk, not the CPU, bounds the proxy; so concurrent requests hand their serve to
:meth:`GroupCommit.record`, the first one in becomes the leader and commits everything
queued in one transaction, and the others wait until the commit that holds theirs is
durable (the classic leader/follower group commit of databases).

One serve's fault must not fail the others of its group: when a group's commit fails
(it is one transaction, so nothing of it was written), the leader commits each serve of
the group alone, and only the serves that fail alone see the error.
"""

from __future__ import annotations

import threading

from emrshare.proxy.node.store import ProxyStore, Serve

__all__ = ["GroupCommit"]


class GroupCommit:
    """Batches :meth:`ProxyStore.journal_many` calls across threads."""

    def __init__(self, store: ProxyStore) -> None:
        self._store = store
        self._cv = threading.Condition()
        self._pending: list[tuple[int, Serve]] = []
        self._next = 1
        self._durable = 0
        self._committing = False
        self._failed: dict[int, BaseException] = {}
        #: Commits made (one fsync each), and serves recorded by them.
        self.commits = 0
        self.recorded = 0

    def record(self, serve: Serve) -> None:
        """Return once ``serve`` is durably journaled; re-raise the commit's error if not."""
        with self._cv:
            ticket = self._next
            self._next += 1
            self._pending.append((ticket, serve))
            while self._durable < ticket:
                if self._committing:
                    self._cv.wait()
                    continue
                self._committing = True
                batch, self._pending = self._pending, []
                self._cv.release()
                failed: dict[int, BaseException] = {}
                try:
                    failed = self._commit(batch)
                except BaseException as exc:  # interrupted: report the whole batch as failed
                    failed = {t: exc for t, _ in batch}
                finally:
                    self._cv.acquire()
                    self._committing = False
                    self._failed.update(failed)
                    # Tickets are handed out in order and every earlier one was in this
                    # or an earlier batch, so everything up to the batch's last is settled.
                    self._durable = max(self._durable, batch[-1][0])
                    self._cv.notify_all()
            error = self._failed.pop(ticket, None)
        if error is not None:
            raise error

    def _commit(self, batch: list[tuple[int, Serve]]) -> dict[int, BaseException]:
        """Commit ``batch``; return the tickets that could not be journaled, with why."""
        try:
            self._store.journal_many([s for _, s in batch])
            self.commits += 1
            self.recorded += len(batch)
            return {}
        except Exception as exc:
            if len(batch) == 1:
                return {batch[0][0]: exc}
        failed: dict[int, BaseException] = {}
        for ticket, serve in batch:
            try:
                self._store.journal_many([serve])
                self.commits += 1
                self.recorded += 1
            except Exception as exc:
                failed[ticket] = exc
        return failed
