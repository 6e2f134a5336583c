"""A hospital EHR integration, end to end, on an in-process network.

Two hospitals, an insurer and a patient on ``LocalNetwork.start()`` (a py-evm chain, an
embedded IPFS-compatible store and three re-encryption proxies at threshold 2, all in this
process). Hospital A writes lab results for the patient (one record, then a bulk import);
the patient approves hospital B's (sealed) request for the lab category for 30 days; B
reads a record, verified end to end; the patient revokes; B is refused; the audit trail
shows B's read.

    python examples/hospital_integration.py
"""

from __future__ import annotations

import secrets
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

from emrshare import (
    AccessDenied,
    ConsortiumAdmin,
    LocalNetwork,
    MemberKeys,
    Patient,
    PatientKeys,
    Provider,
    Role,
)


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        net = LocalNetwork.start(work / "net")
        print(f"network: {net} with {len(net.proxies())} proxies, threshold {net.threshold}")

        # Consortium members publish their keys; the admin admits them.
        admin = ConsortiumAdmin(net, net.admin_key)
        hospital_a = Provider(
            net, MemberKeys.generate(ethereum_key=net.dev_keys[0]), state_dir=work / "a"
        )
        hospital_b = Provider(
            net, MemberKeys.generate(ethereum_key=net.dev_keys[1]), state_dir=work / "b"
        )
        for h in (hospital_a, hospital_b):
            h.apply()
            admin.admit(h.address, Role.PROVIDER)

        # The patient registers and lets hospital A write lab results.
        # (A real patient funds their own derived account; here a funded dev key pays.)
        keys = PatientKeys(secrets.token_bytes(32), ethereum_key=net.dev_keys[2])
        print(f"patient backup phrase has {len(keys.to_mnemonic().split())} words")
        patient = Patient(net, keys, state_dir=work / "patient")
        patient.register()
        patient.authorize_writer(hospital_a.address, "lab")

        # Hospital A: one record from a file, then a bulk import (batched appends).
        report = work / "cbc.txt"
        report.write_text("Complete blood count\nHb 14.1 g/dL\nWBC 6.2 x10^9/L\n")
        rid = hospital_a.add_record(patient.address, "lab", report, media_type="text/plain")
        print(f"hospital A wrote record 0x{rid.hex()[:16]}…")
        bulk = [f"potassium {4.0 + i / 100:.2f} mmol/L".encode() for i in range(100)]
        ids = hospital_a.add_records(patient.address, "lab", bulk, media_type="text/plain")
        print(f"hospital A bulk-imported {len(ids)} records")

        # Hospital B asks for the lab results; the request is sealed to the patient (the
        # chain shows only that B asked this patient something).
        request_id = hospital_b.request_access(
            patient.address, "lab", purpose="TREAT", reason="referral for anaemia work-up"
        )
        (req,) = patient.requests(pending_only=True)
        print(f"patient opened request #{req.request_id}: {req.category} for {req.purpose}")
        # Approving grants the category for 30 days, then sends a sealed answer.
        grant = patient.approve(request_id, expires=timedelta(days=30))
        (answer,) = hospital_b.my_requests()
        assert answer.status == "approved" and grant.policy_id in answer.policy_ids
        print(f"patient granted lab to hospital B until {grant.expires_at:%Y-%m-%d}")

        # Hospital B reads through 2-of-3 proxies; every layer is verified.
        data = hospital_b.read(patient.address, rid)
        assert data == report.read_bytes(), "bytes differ"
        assert hospital_b.read(patient.address, ids[42]) == bulk[42]
        print(f"hospital B read {len(data)} bytes, identical to what A wrote")

        # Revocation: the proxies refuse from the next block on.
        patient.revoke(grant.policy_id)
        try:
            hospital_b.read(patient.address, rid)
        except AccessDenied as exc:
            print(f"after revocation hospital B is refused: {type(exc).__name__}")
        else:
            print("ERROR: hospital B could still read after revocation")
            return 1

        trail = patient.audit()
        readers = {e.requester for e in trail}
        assert hospital_b.address in readers
        print(f"audit trail: {len(trail)} logged accesses, by {sorted(readers)}")
        for actor in (hospital_a, hospital_b, patient):
            actor.close()
        net.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
