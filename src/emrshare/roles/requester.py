"""``Requester``: a consortium member that reads what patients granted it (insurer,
pharmacy, researcher), and :class:`AsyncRequester`, the same for a running event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Self, TypeVar

from emrshare.crypto import MemberKeys
from emrshare.errors import ConfigurationError
from emrshare.network import Network
from emrshare.roles._blob_io import check_output_path, read_record, read_record_to
from emrshare.roles._common import AccessRequestInfo, GrantInfo, RecordInfo, run_blocking
from emrshare.roles._fhir import Attachments, Versions, read_fhir
from emrshare.roles._listing import open_granted
from emrshare.roles._member import MemberFacade
from emrshare.roles._reads import inline
from emrshare.types import RecordId

__all__ = ["AsyncRequester", "Requester"]

T = TypeVar("T")


class Requester(MemberFacade):
    """A consortium member that reads what patients granted it (insurer, pharmacy, …).

    Example::

        insurer = Requester(net, keys, state_dir=Path("/var/lib/insurer/emrshare"))
        rid = insurer.request_access(patient, "lab", purpose="HPAYMT")
        # … the patient approves …
        data = insurer.read(patient, record_id)

    Every read is fully verified: the proxies' capsule fragments, the entry against its
    chain event, the author's signature, the CID, the AEAD and the plaintext SHA-256.
    The methods block; inside a running event loop use :class:`AsyncRequester`.
    """

    def read(self, patient: str, record: RecordId | bytes | str) -> bytes:
        """One granted record's plaintext, through M-of-N proxies, fully verified.
        ``record`` is its id or a unique prefix of 8 or more hex digits.

        Raises :class:`AccessDenied` (or ``GrantRevoked`` / ``GrantExpired``) when the
        proxies refuse, :class:`Unavailable` when too few answer and
        :class:`RecordNotFound` for a record id the patient's index does not hold.
        """
        entry = run_blocking(self._reads.open(patient, record, inline), "Requester.read")
        return read_record(self.network.store, entry)

    def read_to(self, patient: str, record: RecordId | bytes | str, path: Path) -> int:
        """Write one granted record to ``path`` (renamed into place only once verified)."""
        path = check_output_path(path)
        entry = run_blocking(self._reads.open(patient, record, inline), "Requester.read_to")
        return read_record_to(self.network.store, entry, path)

    def read_fhir(
        self,
        patient: str,
        *,
        category: str | None = None,
        resource_types: Sequence[str] | None = None,
        encounter: str | None = None,
        attachments: Attachments = "reference",
        versions: Versions = "latest",
    ) -> list[Any]:
        """The FHIR resources of the records ``patient`` granted this member, as
        ``fhir.resources`` objects (R4 and R4B: ``fhir.resources.R4B``), in index order.

        Every record is opened as :meth:`read` opens one, in one batched proxy request per
        grant (a logged read of each). ``resource_types`` (``["Observation"]``) and
        ``encounter`` (``"Encounter/e1"``) filter; ``attachments="inline"`` puts back the
        attachment data the import stored as records of their own (readable under the
        same grant), as the EHR exported it. A resource imported in several versions comes
        back once, as last written (``versions="all"``: each, oldest first).
        """
        return read_fhir(
            self._reads,
            patient,
            category=category,
            resource_types=resource_types,
            encounter=encounter,
            attachments=attachments,
            versions=versions,
        )


class AsyncRequester:
    """A :class:`Requester` for code that runs an event loop (FastAPI, Jupyter, asyncio).

    Example::

        async with AsyncRequester(net, keys, state_dir=Path("/var/lib/insurer")) as insurer:
            data = await insurer.read(patient, record_id)

    The proxies are asked with the async threshold client, so reads run concurrently on
    the caller's loop; chain and store calls run on one worker thread of this facade
    (never on the loop), one at a time, so its caches and journal are never shared
    between threads. :attr:`sync` is the blocking facade over the same state.
    """

    _facade: ClassVar[type[Requester]] = Requester

    def __init__(
        self,
        network: Network,
        keys: MemberKeys,
        *,
        state_dir: Path,
        proxy_timeout: float = 10.0,
        retry_for: float = 5.0,
    ) -> None:
        self.sync = self._facade(
            network, keys, state_dir=state_dir, proxy_timeout=proxy_timeout, retry_for=retry_for
        )
        self.address = self.sync.address
        self._thread = ThreadPoolExecutor(1, thread_name_prefix=f"emrshare-{self.address[:10]}")
        self._closed = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.address})"

    def _run(self, fn: Callable[[], T]) -> Awaitable[T]:
        self._check_open()
        return asyncio.get_running_loop().run_in_executor(self._thread, fn)

    def _check_open(self) -> None:
        # The worker thread is gone after aclose: the executor's own RuntimeError would
        # say nothing of what to do.
        if self._closed:
            raise ConfigurationError(
                f"this {type(self).__name__} of {self.address} is closed; create a new one"
            )

    async def read(self, patient: str, record: RecordId | bytes | str) -> bytes:
        """As :meth:`Requester.read`."""
        self._check_open()
        entry = await self.sync._reads.open(patient, record, self._run)
        return await self._run(lambda: read_record(self.sync.network.store, entry))

    async def read_to(self, patient: str, record: RecordId | bytes | str, path: Path) -> int:
        """As :meth:`Requester.read_to`."""
        self._check_open()
        path = check_output_path(path)
        entry = await self.sync._reads.open(patient, record, self._run)
        return await self._run(lambda: read_record_to(self.sync.network.store, entry, path))

    async def records(
        self, patient: str, category: str | None = None, *, open_entries: bool = False
    ) -> list[RecordInfo]:
        """As :meth:`Requester.records` (the proxies asked on the caller's loop)."""
        reads = self.sync._reads
        details = await open_granted(reads, patient, category, self._run) if open_entries else {}
        return await self._run(lambda: self.sync._listed(patient, category, details))

    async def grants(
        self, patient: str | None = None, *, active_only: bool = False
    ) -> list[GrantInfo]:
        """As :meth:`Requester.grants`."""
        return await self._run(lambda: self.sync.grants(patient, active_only=active_only))

    async def request_access(
        self,
        patient: str,
        category: str,
        *,
        purpose: str = "TREAT",
        reason: str = "",
        new_category: bool = False,
    ) -> int:
        """As :meth:`Requester.request_access`."""
        return await self._run(
            lambda: self.sync.request_access(
                patient, category, purpose=purpose, reason=reason, new_category=new_category
            )
        )

    async def my_requests(self) -> list[AccessRequestInfo]:
        """As :meth:`Requester.my_requests`."""
        return await self._run(self.sync.my_requests)

    async def apply(self, endpoint: str = "") -> bool:
        """As :meth:`Requester.apply`."""
        return await self._run(lambda: self.sync.apply(endpoint))

    async def report_proxy(self, evidence_path: Path) -> int:
        """As :meth:`Requester.report_proxy`."""
        return await self._run(lambda: self.sync.report_proxy(evidence_path))

    async def aclose(self) -> None:
        """Close the facade and stop its worker thread (again: nothing)."""
        if self._closed:
            return
        try:
            await self._run(self.sync.close)
        finally:
            self._closed = True
            self._thread.shutdown(wait=False)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
