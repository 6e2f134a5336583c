"""RecordIndex: authorized appends by active Providers, exactly-once sequences, batches,
hash chain, re-keying writers, reads at a block, queries."""

from __future__ import annotations

import os
from pathlib import Path

from eth_abi.abi import decode

from emrshare.chain import (
    Action,
    EntryAppended,
    EventCursor,
    Role,
    WriterAuthorized,
    WriterRevoked,
    record_id,
    verify_chain,
)
from emrshare.chain.artifacts import load_artifact
from emrshare.chain.ids import ZERO_HEAD, next_head
from emrshare.types import CategoryTag

from .conftest import HOSPITAL, INSURER, OUTSIDER, PATIENT, PROXY_A, Net, reverts

TAG = CategoryTag(b"\x22" * 32)
OTHER = CategoryTag(b"\x33" * 32)


def _authorize(net: Net, writer: int = HOSPITAL, tag: CategoryTag = TAG) -> bytes:
    payload = os.urandom(120)
    net.as_(PATIENT).index.authorize_writer(tag, net.addr(writer), payload)
    return payload


def test_patient_appends_to_own_index(net: Net) -> None:
    p = net.addr(PATIENT)
    entry = os.urandom(350)
    r = net.as_(PATIENT).index.append(p, TAG, 0, entry)
    ev = r.event(EntryAppended)
    assert (ev.patient, ev.tag, ev.author, ev.sequence, ev.entry) == (p, TAG, p, 0, entry)
    assert ev.record_id == record_id(p, TAG, p, 0)
    assert ev.head == next_head(ZERO_HEAD, ev.record_id, entry)
    head = net.as_(OUTSIDER).index.head(p)
    assert (head.head, head.count) == (ev.head, 1)
    assert verify_chain([ev]) == (ev.head, 1)


def test_writer_needs_authorization_for_the_tag(net: Net) -> None:
    p, h = net.addr(PATIENT), net.addr(HOSPITAL)
    hosp = net.as_(HOSPITAL).index
    reverts(
        lambda: hosp.append(p, TAG, 0, b"x"),
        "RecordIndex_NotAuthorized",
        patient=p,
        tag=TAG,
        writer=h,
    )
    payload = _authorize(net)
    assert hosp.is_writer(p, TAG, h) and not hosp.is_writer(p, OTHER, h)
    (auth,) = list(net.as_(OUTSIDER).index.events(WriterAuthorized, writer=h))
    assert (auth.patient, auth.tag, auth.sealed_payload) == (p, TAG, payload)
    hosp.append(p, TAG, 0, b"x")
    reverts(
        lambda: hosp.append(p, OTHER, 0, b"x"),
        "RecordIndex_NotAuthorized",
        patient=p,
        tag=OTHER,
        writer=h,
    )
    assert net.as_(PATIENT).index.revoke_writer(TAG, h).event(WriterRevoked).writer == h
    reverts(
        lambda: hosp.append(p, TAG, 1, b"x"),
        "RecordIndex_NotAuthorized",
        patient=p,
        tag=TAG,
        writer=h,
    )


def test_authorization_rules(net: Net) -> None:
    idx = net.as_(PATIENT).index
    p, zero, h = net.addr(PATIENT), "0x" + "00" * 20, net.addr(HOSPITAL)
    reverts(lambda: idx.authorize_writer(TAG, p, b"k"), "RecordIndex_InvalidWriter", writer=p)
    reverts(
        lambda: idx.authorize_writer(TAG, zero, b"k"),
        "RecordIndex_InvalidWriter",
        writer=zero,
    )
    reverts(lambda: idx.authorize_writer(TAG, h, b""), "RecordIndex_EmptyPayload")
    reverts(
        lambda: idx.authorize_writer(TAG, h, bytes(1025)),
        "RecordIndex_PayloadTooLarge",
        length=1025,
    )
    # Only active Providers may be authorized: not an outsider, an insurer or a proxy.
    for who in (OUTSIDER, INSURER, PROXY_A):
        reverts(
            lambda w=who: idx.authorize_writer(TAG, net.addr(w), b"k"),
            "RecordIndex_NotMember",
            writer=net.addr(who),
        )
    reverts(
        lambda: idx.revoke_writer(TAG, h), "RecordIndex_NotWriter", patient=p, tag=TAG, writer=h
    )
    idx.authorize_writer(TAG, h, bytes(1024))


def test_attack_expelled_writer_appends_refused(net: Net) -> None:
    p, h = net.addr(PATIENT), net.addr(HOSPITAL)
    _authorize(net)
    hosp = net.as_(HOSPITAL).index
    hosp.append(p, TAG, 0, b"while a member")
    # The consortium expels the hospital; its authorization from the patient remains.
    net.pass_proposal(Action.REMOVE, HOSPITAL)
    assert hosp.is_authorized(p, TAG, h) and not hosp.is_writer(p, TAG, h)
    reverts(lambda: hosp.append(p, TAG, 1, b"after expulsion"), "RecordIndex_NotMember", writer=h)
    reverts(lambda: hosp.append_batch(p, TAG, 1, [b"a", b"b"]), "RecordIndex_NotMember", writer=h)
    reverts(
        lambda: net.as_(PATIENT).index.authorize_writer(OTHER, h, b"k"),
        "RecordIndex_NotMember",
        writer=h,
    )
    assert hosp.head(p).count == 1
    # A never-authorized non-member still gets NotAuthorized (checked first).
    reverts(
        lambda: net.as_(OUTSIDER).index.append(p, TAG, 0, b"x"),
        "RecordIndex_NotAuthorized",
        patient=p,
        tag=TAG,
        writer=net.addr(OUTSIDER),
    )


def test_writer_whose_role_changed_cannot_append(net: Net) -> None:
    p, h = net.addr(PATIENT), net.addr(HOSPITAL)
    _authorize(net)
    net.pass_proposal(Action.CHANGE_ROLE, HOSPITAL, Role.INSURER)
    reverts(
        lambda: net.as_(HOSPITAL).index.append(p, TAG, 0, b"x"), "RecordIndex_NotMember", writer=h
    )
    net.pass_proposal(Action.CHANGE_ROLE, HOSPITAL, Role.PROVIDER)
    net.as_(HOSPITAL).index.append(p, TAG, 0, b"x")


def test_rekey_writers_moves_them_to_the_new_tag_in_one_transaction(net: Net) -> None:
    p, h = net.addr(PATIENT), net.addr(HOSPITAL)
    idx = net.as_(PATIENT).index
    _authorize(net)
    net.as_(HOSPITAL).index.append(p, TAG, 0, b"old epoch")
    payload = os.urandom(200)
    r = idx.rekey_writers(TAG, OTHER, [h], [payload])
    revoked, authorized = r.event(WriterRevoked), r.event(WriterAuthorized)
    assert (revoked.tag, revoked.writer) == (TAG, h)
    assert (authorized.tag, authorized.writer, authorized.sealed_payload) == (OTHER, h, payload)
    assert r.logs[0]["logIndex"] < r.logs[1]["logIndex"]
    assert not idx.is_writer(p, TAG, h) and idx.is_writer(p, OTHER, h)
    reverts(
        lambda: net.as_(HOSPITAL).index.append(p, TAG, 1, b"x"),
        "RecordIndex_NotAuthorized",
        patient=p,
        tag=TAG,
        writer=h,
    )
    net.as_(HOSPITAL).index.append(p, OTHER, 0, b"new epoch")
    # A writer not authorized on the old tag is only authorized on the new one.
    third = CategoryTag(b"\x44" * 32)
    r2 = idx.rekey_writers(TAG, third, [h], [payload])
    assert list(r2.events_of(WriterRevoked)) == [] and idx.is_writer(p, third, h)
    reverts(
        lambda: idx.rekey_writers(OTHER, third, [h], []),
        "RecordIndex_LengthMismatch",
        writerCount=1,
        payloadCount=0,
    )
    reverts(
        lambda: idx.rekey_writers(OTHER, third, [net.addr(INSURER)], [payload]),
        "RecordIndex_NotMember",
        writer=net.addr(INSURER),
    )
    reverts(lambda: idx.rekey_writers(OTHER, third, [h], [b""]), "RecordIndex_EmptyPayload")
    assert idx.is_writer(p, OTHER, h), "a failed rekey changes nothing"


def test_revoke_writers_is_strict(net: Net) -> None:
    p, h = net.addr(PATIENT), net.addr(HOSPITAL)
    idx = net.as_(PATIENT).index
    _authorize(net)
    _authorize(net, tag=OTHER)
    reverts(
        lambda: idx.revoke_writers(TAG, [h, net.addr(INSURER)]),
        "RecordIndex_NotWriter",
        patient=p,
        tag=TAG,
        writer=net.addr(INSURER),
    )
    assert idx.is_writer(p, TAG, h)
    r = idx.revoke_writers(TAG, [h])
    assert [e.writer for e in r.events_of(WriterRevoked)] == [h]
    assert not idx.is_writer(p, TAG, h) and idx.is_writer(p, OTHER, h)


def test_head_at_a_block(net: Net) -> None:
    p = net.addr(PATIENT)
    idx = net.as_(PATIENT).index
    first = idx.append(p, TAG, 0, b"one")
    second = idx.append(p, TAG, 1, b"two")
    ro = net.as_(OUTSIDER).index
    at_first = ro.head(p, block=first.block_number)
    assert (at_first.head, at_first.count) == (first.event(EntryAppended).head, 1)
    assert ro.head(p, block=second.block_number).count == 2
    assert ro.head(p, block=first.block_number - 1).count == 0


def test_attack_epoch_not_on_chain(net: Net) -> None:
    # No function, event or struct of the index or the grants names an epoch.
    for name in ("RecordIndex", "Grants", "AuditLog"):
        text = str(load_artifact(name).abi).lower()
        assert "epoch" not in text, name
    # An appended entry's event data is exactly (author, sequence, head, entry): nothing else.
    p = net.addr(PATIENT)
    r = net.as_(PATIENT).index.append(p, TAG, 0, b"sealed")
    (log,) = r.logs
    data = bytes(log["data"])
    assert len(log["topics"]) == 3  # the event, patient, tag
    assert decode(["address", "uint64", "bytes28", "bytes"], data) == (
        p.lower(),
        0,
        r.event(EntryAppended).head,
        b"sealed",
    )
    assert len(data) == 6 * 32  # four head words, the entry's length and one padded word


def test_exactly_once_by_sequence(net: Net) -> None:
    p, h = net.addr(PATIENT), net.addr(HOSPITAL)
    _authorize(net)
    hosp = net.as_(HOSPITAL).index
    hosp.append(p, TAG, 0, b"first")
    # A retry of the same append (same sequence) cannot land twice.
    err = reverts(
        lambda: hosp.append(p, TAG, 0, b"first"),
        "RecordIndex_WrongSequence",
        patient=p,
        tag=TAG,
        writer=h,
        expected=1,
        given=0,
    )
    assert "continue from 1" in str(err)
    reverts(
        lambda: hosp.append_batch(p, TAG, 5, [b"a", b"b"]),
        "RecordIndex_WrongSequence",
        patient=p,
        tag=TAG,
        writer=h,
        expected=1,
        given=5,
    )
    assert hosp.next_sequence(p, TAG, h) == 1
    # Sequences are per (patient, tag, writer): the patient's own start at 0.
    net.as_(PATIENT).index.append(p, TAG, 0, b"own")
    assert hosp.head(p).count == 2


def test_batch_append_and_chain(net: Net) -> None:
    p, h = net.addr(PATIENT), net.addr(HOSPITAL)
    _authorize(net)
    _authorize(net, tag=OTHER)
    hosp = net.as_(HOSPITAL).index
    entries = [os.urandom(300 + i) for i in range(5)]
    r = hosp.append_batch(p, TAG, 0, entries)
    evs = r.events_of(EntryAppended)
    assert [e.entry for e in evs] == entries
    assert [e.sequence for e in evs] == list(range(5))
    assert [e.record_id for e in evs] == [record_id(p, TAG, h, i) for i in range(5)]
    r2 = hosp.append_batch(p, OTHER, 0, [b"o1", b"o2"])
    assert hosp.next_sequence(p, TAG, h) == 5 and hosp.next_sequence(p, OTHER, h) == 2
    everything = list(hosp.entries(p))
    assert len(everything) == 7
    head, count = verify_chain(everything)
    assert (head, count) == (hosp.head(p).head, hosp.head(p).count)
    # Resume from a known head: the last two entries follow the fifth one.
    assert verify_chain(r2.events_of(EntryAppended), head=evs[-1].head)[1] == 2
    only_other = list(hosp.entries(p, tag=OTHER))
    assert [e.entry for e in only_other] == [b"o1", b"o2"]
    assert verify_chain([]) == (ZERO_HEAD, 0)


def test_entry_and_batch_limits(net: Net) -> None:
    p = net.addr(PATIENT)
    idx = net.as_(PATIENT).index
    reverts(lambda: idx.append(p, TAG, 0, b""), "RecordIndex_InvalidEntry", index=0, length=0)
    reverts(
        lambda: idx.append_batch(p, TAG, 0, [b"ok", bytes(4097)]),
        "RecordIndex_InvalidEntry",
        index=1,
        length=4097,
    )
    reverts(lambda: idx.append_batch(p, TAG, 0, []), "RecordIndex_EmptyBatch")
    idx.append(p, TAG, 0, bytes(4096))


def test_event_queries_page_and_resume_from_a_cursor(net: Net, tmp_path: Path) -> None:
    p = net.addr(PATIENT)
    idx = net.as_(PATIENT).index
    for i in range(3):
        idx.append(p, TAG, i, bytes([i + 1]))
    paged = list(net.as_(INSURER).index.entries(p, tag=TAG, page_size=1))
    assert [e.entry for e in paged] == [b"\x01", b"\x02", b"\x03"]
    assert list(idx.entries(p, tag=[OTHER])) == []
    cursor_file = tmp_path / "cursor.json"
    cursor = EventCursor(cursor_file)
    first = idx.poll(EntryAppended, cursor, "mine", patient=p)
    assert len(first) == 3
    assert idx.poll(EntryAppended, EventCursor(cursor_file), "mine", patient=p) == []
    idx.append(p, TAG, 3, b"\x04")
    again = idx.poll(EntryAppended, EventCursor(cursor_file), "mine", patient=p)
    assert [e.entry for e in again] == [b"\x04"]


def test_append_once_survives_a_retry(net: Net) -> None:
    p, h = net.addr(PATIENT), net.addr(HOSPITAL)
    _authorize(net)
    hosp = net.as_(HOSPITAL).index
    entries = [b"e0", b"e1", b"e2"]
    first = hosp.append_once(p, TAG, 0, entries)
    assert not first.already and first.receipt is not None
    assert first.record_ids == tuple(record_id(p, TAG, h, i) for i in range(3))
    # The writer lost the receipt and retries the same call: nothing is appended twice.
    again = hosp.append_once(p, TAG, 0, entries)
    assert again.already and again.receipt is None and again.record_ids == first.record_ids
    assert hosp.head(p).count == 3
    single = hosp.append_once(p, TAG, 3, [b"e3"])
    assert single.record_ids == (record_id(p, TAG, h, 3),) and not single.already
    # A gap is not "already appended": it is re-raised.
    reverts(
        lambda: hosp.append_once(p, TAG, 9, [b"x"]),
        "RecordIndex_WrongSequence",
        patient=p,
        tag=TAG,
        writer=h,
        expected=4,
        given=9,
    )
