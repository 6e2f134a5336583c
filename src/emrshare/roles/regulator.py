"""``Regulator``: the health commission's (or the insurance bureau's) member facade.

A regulator reads the chain: the two-invoice check of every hospital receipt, the trace of
a patient's dispense back to the factory after an adverse reaction, recalls (with their
notices to the patients' links), and the prescription and claims reports
(``regulator.prescriptions.counts()``, ``regulator.claims.report()``).
"""

from __future__ import annotations

from collections.abc import Iterable

from emrshare.roles._member import MemberFacade
from emrshare.trace import DispenseTrace, Invoice, TwoInvoiceReport

__all__ = ["Regulator"]


class Regulator(MemberFacade):
    """A consortium member with the Regulator role.

    Example::

        regulator = Regulator.from_keystore(net, keystore, password, state_dir=d)
        report = regulator.two_invoice_report(invoices=handed_in)
        for f in report.flagged:
            print(f.shipment_id.hex(), f.reasons)
        routes = regulator.trace_dispense([secret_the_patient_revealed])
    """

    def two_invoice_report(
        self, invoices: Iterable[Invoice] | None = None, *, from_block: int = 0
    ) -> TwoInvoiceReport:
        """The two-invoice check (:meth:`~emrshare.roles._drugs.MemberDrugs.two_invoice_report`)."""
        return self.drugs.two_invoice_report(invoices, from_block=from_block)

    def trace_dispense(self, secrets: Iterable[bytes]) -> list[DispenseTrace]:
        """Dispenses a patient revealed, traced back to the factory."""
        return self.drugs.trace_dispense(secrets)

    def recall(self, batch: bytes | str, reason: str, *, notify: bool = True) -> int:
        """Recall a batch and (``notify``) send a notice to every link it was dispensed
        to; returns the number of notices sent."""
        self.drugs.recall(batch, reason)
        return self.drugs.notify_recall(batch) if notify else 0
