"""A patient's side of drug traceability (``patient.drugs``): the blinded links a pharmacy
dispenses to, the patient's own dispenses and recall notices, the pack check, and the
secret of one dispense revealed to the regulator after an adverse reaction.

A link is ``link_of(keys.drug_link_secret(i))`` for the ``i``-th dispense; the next index
is kept in ``state_dir/drug-links.json`` (0600). On a new machine it is found again from
the chain: the links are scanned until :data:`GAP` in a row were never dispensed to.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from emrshare._files import damaged, private_dir, read_json_object, write_atomically
from emrshare.chain import BatchState, Dispensed, RecallNotice, link_of
from emrshare.crypto import PatientKeys
from emrshare.errors import InvalidInput
from emrshare.network import Network
from emrshare.roles._drug_checks import PackCheck, check_pack
from emrshare.trace import SerialList

__all__ = ["GAP", "DispenseLink", "PatientDispense", "PatientDrugs"]

#: Unused links in a row after which a scan of the chain stops.
GAP = 20
_FILE = "drug-links.json"


@dataclass(frozen=True, slots=True)
class DispenseLink:
    """A link to show the pharmacy for one dispense (its secret stays with the keys)."""

    index: int
    link: bytes

    def __str__(self) -> str:
        return "0x" + self.link.hex()


@dataclass(frozen=True, slots=True)
class PatientDispense:
    """One dispense to this patient: the event, its link's index, the batch now and
    whether a recall notice reached the link."""

    index: int
    event: Dispensed
    batch: BatchState | None
    notified: bool

    @property
    def recalled(self) -> bool:
        return self.batch is not None and self.batch.recalled


class PatientDrugs:
    """Example::

    link = patient.drugs.new_link()          # shown to the pharmacy as text or a QR code
    for d in patient.drugs.dispenses():
        print(d.event.batch_id.hex(), "RECALLED" if d.recalled else "")
    secret = patient.drugs.reveal(link.index)  # for the regulator, after a reaction
    """

    def __init__(self, network: Network, keys: PatientKeys, state_dir: Path) -> None:
        self.network = network
        self._keys = keys
        self._path = Path(state_dir) / _FILE

    def _link(self, index: int) -> bytes:
        return link_of(self._keys.drug_link_secret(index))

    def _stored(self) -> int | None:
        """The next index the counter file holds (``None`` before the first link here)."""
        try:
            doc = read_json_object(self._path, "dispense link counter")
        except FileNotFoundError:
            return None
        n = doc.get("next")
        if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n < 2**32:
            raise damaged(self._path, "dispense link counter", "'next' is not an index")
        return n

    def _next(self) -> int:
        stored = self._stored()
        return self._scan() if stored is None else stored

    def _scan(self) -> int:
        """The index after the last link the chain shows a dispense to (batches of
        :data:`GAP` links, until one batch holds none)."""
        trace = self.network.contracts.drug_trace
        start = 0
        found = 0
        while True:
            links = {self._link(i): i for i in range(start, start + GAP)}
            used = [links[bytes(e.link)] for e in trace.events(Dispensed, link=list(links))]
            if not used:
                return found
            found = max(found, max(used) + 1)
            start += GAP

    def new_link(self) -> DispenseLink:
        """A fresh link for the next dispense (never the same one twice: a link shown to
        two pharmacies would tie those dispenses together)."""
        index = self._next()
        private_dir(self._path.parent)
        write_atomically(self._path, json.dumps({"next": index + 1}))
        return DispenseLink(index, self._link(index))

    def _mine(self) -> dict[bytes, int]:
        last = max(self._stored() or 0, self._scan())  # the chain once, not twice
        return {self._link(i): i for i in range(last + GAP)}

    def dispenses(self) -> list[PatientDispense]:
        """Every dispense to this patient's links, oldest first, with its batch's state."""
        mine = self._mine()
        trace = self.network.contracts.drug_trace
        end = trace.client.safe_block()
        events = list(trace.events(Dispensed, link=list(mine), to_block=end))
        notified = {
            (bytes(n.link), bytes(n.batch_id))
            for n in trace.events(RecallNotice, link=list(mine), to_block=end)
        }
        batches: dict[bytes, BatchState | None] = {}
        out = []
        for e in events:
            bid = bytes(e.batch_id)
            if bid not in batches:
                batches[bid] = trace.batch(bid, block=end)
            out.append(
                PatientDispense(
                    mine[bytes(e.link)], e, batches[bid], (bytes(e.link), bid) in notified
                )
            )
        return out

    def recall_notices(self) -> list[RecallNotice]:
        """Recall notices sent to this patient's links."""
        return list(self.network.contracts.drug_trace.events(RecallNotice, link=list(self._mine())))

    def check(self, code: str, *, serials: SerialList | None = None) -> PackCheck:
        """Check a pack received against the chain (:func:`~emrshare.roles._drugs.check_pack`)."""
        return check_pack(self.network.contracts.drug_trace, code, serials=serials)

    def reveal(self, index: int) -> bytes:
        """**Secret:** the secret of link ``index``, to show the regulator (it proves that one
        dispense, and no other, was this patient's)."""
        if not 0 <= index < 2**32:
            raise InvalidInput("a link index is a whole number from 0")
        return self._keys.drug_link_secret(index)
