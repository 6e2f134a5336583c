"""The steps protocols: the facades' record writer is a full :class:`BulkWriteSteps`, and
the journal finds each bulk capability through its protocol, never by name."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import IO, get_type_hints

from emrshare.journal import BulkWriteSteps, ReceiptStatus, WriteJob, WriteSteps
from emrshare.journal._bulk import Capabilities
from emrshare.journal.steps import ConfirmsOnSend, SealsMany, StoresConcurrently, StoresMany
from emrshare.roles import Provider
from emrshare.types import Cid, RecordId


def as_bulk_steps(provider: Provider) -> BulkWriteSteps:
    # Checked by mypy: the facades' record writer satisfies the protocol structurally.
    return provider.writer


class Plain:
    def encrypt(self, job: WriteJob, sink: IO[bytes]) -> bytes:
        return b""

    def store(self, job: WriteJob, ciphertext: IO[bytes]) -> Cid:
        return Cid("")

    def seal(self, job: WriteJob, cid: Cid, secret: bytes) -> bytes:
        return b""

    def appended(self, jobs: Sequence[WriteJob]) -> set[RecordId]:
        return set()

    def send_append(self, jobs: Sequence[WriteJob], sealed: Sequence[bytes]) -> bytes:
        return b""

    def receipt(self, tx_hash: bytes) -> ReceiptStatus:
        return "confirmed"

    def unpin(self, cid: Cid) -> None:
        pass


class Confirming(Plain):
    confirms_on_send = True


class Full(Confirming):
    store_concurrency = 3

    def store_many(self, jobs: Sequence[WriteJob], files: Sequence[IO[bytes]]) -> list[Cid]:
        return [self.store(j, f) for j, f in zip(jobs, files, strict=True)]

    def seal_many(self, jobs: Sequence[WriteJob]) -> Iterator[bytes | None]:
        yield from (None for _ in jobs)


def test_the_record_writer_offers_every_bulk_capability() -> None:
    # At run time too (mypy checks the signatures through ``as_bulk_steps``).
    prop = vars(Provider)["writer"]
    assert isinstance(prop, property)
    writer = get_type_hints(prop.fget)["return"]
    for protocol in (ConfirmsOnSend, StoresConcurrently, StoresMany, SealsMany):
        (name,) = (n for n in vars(protocol) if not n.startswith("_"))
        assert hasattr(writer, name), name


def test_plain_steps_have_no_bulk_capability() -> None:
    plain: WriteSteps = Plain()
    assert not isinstance(plain, BulkWriteSteps)
    assert Capabilities.of(plain) == Capabilities()


def test_each_capability_is_found_on_its_own() -> None:
    can = Capabilities.of(Confirming())
    assert can.confirms_on_send and can.store_many is None and can.seal_many is None
    assert can.store_concurrency == 1


def test_full_steps_are_bulk_steps() -> None:
    steps = Full()
    assert isinstance(steps, BulkWriteSteps)
    can = Capabilities.of(steps)
    assert can.confirms_on_send and can.store_concurrency == 3
    assert can.store_many is not None and can.seal_many is not None
