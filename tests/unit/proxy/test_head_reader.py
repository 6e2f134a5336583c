"""The shared latest-block read: a request never takes the answer of a read that
started before it arrived, and concurrent requests share one read."""

from __future__ import annotations

import threading
import time

import pytest

from emrshare.errors import ChainError
from emrshare.proxy.node._head import Head, HeadReader


class Node:
    """A chain head that advances when told; each read takes ``delay`` seconds and
    reports the head as it was when the read *started*."""

    def __init__(self, delay: float = 0.0) -> None:
        self.number = 1
        self.delay = delay
        self.reads = 0
        self.fail = False
        self.started = threading.Event()
        self.release = threading.Event()
        self.release.set()

    def read(self) -> tuple[int, int, bytes]:
        self.reads += 1
        number = self.number
        self.started.set()
        self.release.wait()
        time.sleep(self.delay)
        if self.fail:
            raise ChainError("the node is down")
        return number, 1000 + number, number.to_bytes(32, "big")


def test_a_request_alone_reads_once_and_sees_the_head() -> None:
    node = Node()
    head = HeadReader(node.read)
    assert head.latest() == Head(1, 1001, (1).to_bytes(32, "big"))
    node.number = 2
    assert head.latest().number == 2
    assert node.reads == 2 and head.reads == 2 and head.answered == 2


def test_a_read_in_flight_before_a_request_is_not_its_answer() -> None:
    """The revocation race: a read started at block 1; block 2 (the revocation) is
    mined; a request arriving now must be judged at 2, not take the read in flight."""
    node = Node()
    node.release.clear()
    head = HeadReader(node.read)
    first: list[Head] = []
    t1 = threading.Thread(target=lambda: first.append(head.latest()))
    t1.start()
    assert node.started.wait(5)
    node.number = 2  # mined while the first read is in flight
    late: list[Head] = []
    t2 = threading.Thread(target=lambda: late.append(head.latest()))
    t2.start()
    time.sleep(0.05)  # t2 is waiting behind the read in flight
    node.release.set()
    t1.join(5)
    t2.join(5)
    assert first[0].number == 1
    assert late[0].number == 2
    assert node.reads == 2


def test_requests_waiting_together_share_one_read() -> None:
    node = Node()
    node.release.clear()
    head = HeadReader(node.read)
    leader = threading.Thread(target=head.latest)
    leader.start()
    assert node.started.wait(5)
    answers: list[int] = []
    lock = threading.Lock()

    def ask() -> None:
        n = head.latest().number
        with lock:
            answers.append(n)

    waiting = [threading.Thread(target=ask) for _ in range(20)]
    for t in waiting:
        t.start()
    time.sleep(0.1)  # all 20 queue behind the read in flight
    node.release.set()
    leader.join(5)
    for t in waiting:
        t.join(5)
    assert len(answers) == 20
    # The first read, then one (or, if a thread was slow to queue, a few) for all 20.
    assert node.reads <= 4
    assert head.answered == 21


def test_a_failed_read_fails_the_requests_it_answers_and_the_next_one_reads_again() -> None:
    node = Node()
    head = HeadReader(node.read)
    node.fail = True
    with pytest.raises(ChainError):
        head.latest()
    node.fail = False
    assert head.latest().number == 1
