"""Research studies through the facades and the real de-identification service app
(uvicorn on loopback, in a thread: the in-process network's chain and proxies live in this
process): forged and foreign joins are refused with a reason, a patient who revoked
without leaving is left out of the next release, a dataset opens for its researcher only,
and a closed study takes nothing."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import httpx
import pytest
import uvicorn

from emrshare import ConsortiumAdmin, Patient, Provider, Requester
from emrshare._process import free_port
from emrshare.chain import ParticipantKey, Role
from emrshare.crypto import MemberKeys, PatientKeys
from emrshare.crypto.entry import sign_eip191
from emrshare.devnet import LocalNetwork
from emrshare.errors import DecryptionError, InvalidInput, StudyServiceError
from emrshare.research import DeidService, create_app
from emrshare.roles._research import join_body, join_digest, release_digest

pytestmark = pytest.mark.integration

FHIR = "application/fhir+json; fhirVersion=4.0"


@dataclass
class World:
    net: LocalNetwork
    researcher: Requester
    hospital: Provider
    service: DeidService
    url: str
    alice: Patient
    bob: Patient


def _observation(oid: str, patient: str, value: float) -> bytes:
    return json.dumps({
        "resourceType": "Observation", "id": oid, "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "2160-0"}]},
        "subject": {"reference": f"Patient/{patient}", "display": "Alice Example"},
        "effectiveDateTime": "2026-03-04T10:00:00Z",
        "valueQuantity": {"value": value, "unit": "mg/dL"},
    }).encode()  # fmt: skip


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("studies")
    net = LocalNetwork.start(tmp / "net", proxies=2, threshold=2)
    admin = ConsortiumAdmin(net, net.admin_key)
    keys = net.dev_keys
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    researcher = Requester(net, MemberKeys.generate(ethereum_key=keys[0]), state_dir=tmp / "r")
    hospital = Provider(net, MemberKeys.generate(ethereum_key=keys[1]), state_dir=tmp / "h")
    deid = Provider(net, MemberKeys.generate(ethereum_key=keys[2]), state_dir=tmp / "d")
    alice = Patient(net, PatientKeys(os.urandom(32), ethereum_key=keys[3]), state_dir=tmp / "a")
    bob = Patient(net, PatientKeys(os.urandom(32), ethereum_key=keys[4]), state_dir=tmp / "b")
    researcher.apply()
    admin.admit(researcher.address, Role.RESEARCHER)
    hospital.apply()
    admin.admit(hospital.address, Role.PROVIDER)
    deid.apply(url)
    admin.admit(deid.address, Role.PROVIDER)
    for p, name in ((alice, "alice"), (bob, "bob")):
        p.register()
        p.authorize_writer(hospital.address, "lab", new_category=True)
        p.authorize_writer(hospital.address, "imaging", new_category=True)
        for i in range(2):
            hospital.add_record(p.address, "lab", _observation(f"{name}-{i}", name, 1.0 + i),
                                media_type=FHIR)  # fmt: skip
        hospital.add_record(p.address, "imaging", b"not FHIR")
    service = DeidService(net, deid.keys, tmp / "service", points_per_release=3)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(service), host="127.0.0.1", port=port, log_level="warning", lifespan="off"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield World(net, researcher, hospital, service, url, alice, bob)
    finally:
        server.should_exit = True
        thread.join(10)
        for x in (researcher, hospital, deid, alice, bob):
            x.close()
        net.close()


def _publish(w: World, needs: tuple[str, ...] = ("lab",)) -> bytes:
    s = w.researcher.research.publish(
        os.urandom(64), list(needs), ends=timedelta(days=30), service=w.service.address,
        ethics="IRB-test",
    )  # fmt: skip
    return s.study_id


def _post(w: World, path: str, body: dict[str, object]) -> tuple[int, str]:
    r = httpx.post(w.url + path, json=body, timeout=30)
    return r.status_code, str(r.json().get("error", "ok"))


def _forged_join(
    w: World,
    sid: bytes,
    signer: Patient,
    patient: str,
    policies: list[bytes],
    participant: ParticipantKey | None = None,
) -> dict:
    """A join body signed by ``signer``'s account and by ``participant`` (default:
    ``signer``'s own participant key; a test may derive it), naming ``patient``."""
    key = participant or signer.studies._key(sid)
    studies = w.net.contracts.studies
    nonce = studies.nonce(sid, key.address)
    chain_id = w.net.w3.eth.chain_id
    proof = key.join_proof(sid, nonce, chain_id, studies.address)
    digest = join_digest(chain_id, studies.address, sid, key.address, patient, policies)
    account_signature, _ = sign_eip191(digest, signer.keys.ethereum_key)
    return join_body(sid, key.address, proof, patient, policies, account_signature,
                     key.sign(digest))  # fmt: skip


def test_join_release_open_and_points(world: World) -> None:
    sid = _publish(world)
    joined = world.alice.studies.join(sid)
    assert joined.joined and joined.participants == 1
    release = world.researcher.research.request_release(sid)
    assert (release.participants, release.resources) == (1, 2)
    data = world.researcher.research.open_dataset(sid)
    assert data.profile == "hipaa-safe-harbor-shifted/1"
    text = json.dumps(data.resources)
    assert "alice-0" not in text and "Patient/alice" not in text and "Alice" not in text
    assert "2026-03-04" not in text  # the date is shifted
    assert {r["resourceType"] for r in data.resources} == {"Observation"}
    assert world.alice.studies.points(sid) == 3
    # Another member cannot open the researcher's dataset: it is sealed to the researcher.
    with pytest.raises(DecryptionError):
        world.hospital.research.open_dataset(sid)


def test_attack_a_join_signed_by_another_patient_or_naming_their_grants(world: World) -> None:
    sid = _publish(world)
    g = world.bob.grant(world.service.address, "lab", expires=timedelta(days=2))
    bobs = [bytes(g.policy_id)]
    # alice signs a join in bob's name: not bob's signature.
    assert _post(world, "/v1/join", _forged_join(world, sid, world.alice, world.bob.address,
                                                 bobs)) == (403, "bad_signature")  # fmt: skip
    # alice names bob's grant as hers: not a grant of alice to the service.
    assert _post(world, "/v1/join", _forged_join(world, sid, world.alice, world.alice.address,
                                                 bobs)) == (403, "not_granted")  # fmt: skip
    assert world.net.contracts.studies.study(sid).participants == 0


def test_attack_a_scoped_or_unneeded_grant_does_not_join(world: World) -> None:
    sid = _publish(world)
    imaging = world.alice.grant(world.service.address, "imaging", expires=timedelta(days=2))
    record = world.alice.records("lab")[0].record_id
    scoped = world.alice.grant(world.service.address, "lab", expires=timedelta(days=2),
                               records=[record])  # fmt: skip
    for policy in (imaging.policy_id, scoped.policy_id):
        body = _forged_join(world, sid, world.alice, world.alice.address, [bytes(policy)])
        assert _post(world, "/v1/join", body) == (403, "not_granted")


def test_attack_a_bad_participant_proof_is_the_chains_refusal(world: World) -> None:
    sid = _publish(world)
    g = world.bob.grant(world.service.address, "lab", expires=timedelta(days=2))
    body = _forged_join(world, sid, world.bob, world.bob.address, [bytes(g.policy_id)])
    body["proof"] = "0x" + "11" * 65
    assert _post(world, "/v1/join", body) == (409, "Studies_BadProof")


def test_revoking_without_leaving_drops_the_patient_from_the_next_release(world: World) -> None:
    sid = _publish(world)
    world.bob.studies.join(sid)
    first = world.researcher.research.request_release(sid)
    assert first.participants == 1
    mine = [g for g in world.bob.grants(active_only=True) if g.grantee == world.service.address]
    world.bob.revoke(mine[0].policy_id, new_epoch=False)  # revokes every lab grant to it
    assert not [g for g in world.bob.grants(active_only=True) if g.grantee == world.service.address]
    second = world.researcher.research.request_release(sid)
    assert (second.participants, second.resources) == (0, 0)
    assert world.net.contracts.studies.participant(
        sid, world.bob.studies.participant(sid)
    ).joined  # still on chain: the grants are what the service reads by


def test_a_closed_study_takes_no_join_and_no_release(world: World) -> None:
    sid = _publish(world)
    world.researcher.research.close(sid)
    with pytest.raises(InvalidInput, match="closed"):
        world.alice.studies.join(sid)
    with pytest.raises(StudyServiceError) as refused:
        world.researcher.research.request_release(sid)
    assert refused.value.reason == "study_not_open"


def test_a_bad_body_is_a_400_and_an_unknown_study_a_404(world: World) -> None:
    r = httpx.post(world.url + "/v1/leave", content=b"[1, 2]", timeout=10)
    assert (r.status_code, r.json()["error"]) == (400, "bad_request")
    body = {"study": "0x" + "00" * 32, "deadline": int(time.time()) + 60,
            "signature": "0x" + "00" * 65}  # fmt: skip
    assert _post(world, "/v1/release", body) == (404, "unknown_study")


def test_attack_taking_over_another_patients_participant_is_refused(world: World) -> None:
    """The review's case: Mallory names alice's participant (public in StudyJoined) with
    her own grant and signature; without alice's participant key she cannot pair them."""
    sid = _publish(world)
    world.alice.studies.join(sid)
    victim = world.alice.studies.participant(sid)
    g = world.bob.grant(world.service.address, "lab", expires=timedelta(days=2))
    body = _forged_join(world, sid, world.bob, world.bob.address, [bytes(g.policy_id)])
    body["participant"] = victim  # alice's participant, bob's signatures
    assert _post(world, "/v1/join", body) == (403, "bad_signature")
    released = world.researcher.research.request_release(sid)
    assert released.participants == 1 and released.resources == 2  # alice's two, not bob's


def test_attack_one_patient_as_many_participants_is_refused(world: World) -> None:
    sid = _publish(world)
    world.bob.studies.join(sid)
    g = [g for g in world.bob.grants(active_only=True) if g.grantee == world.service.address]
    extra = ParticipantKey(os.urandom(32))
    body = _forged_join(world, sid, world.bob, world.bob.address, [bytes(g[0].policy_id)], extra)
    assert _post(world, "/v1/join", body) == (409, "already_participating")
    assert world.net.contracts.studies.study(sid).participants == 1


def test_attack_a_replayed_release_request_asks_for_a_release_that_exists(world: World) -> None:
    sid = _publish(world)
    studies = world.net.contracts.studies
    deadline = int(time.time()) + 300
    digest = release_digest(world.net.w3.eth.chain_id, studies.address, sid, 1, deadline)
    signature, _ = sign_eip191(digest, world.researcher.keys.ethereum_key)
    body = {"study": "0x" + sid.hex(), "deadline": deadline, "signature": "0x" + signature.hex()}
    assert _post(world, "/v1/release", body) == (200, "ok")
    assert _post(world, "/v1/release", body) == (403, "not_researcher")  # release 1 exists
    assert studies.study(sid).releases == 1


def test_joining_again_renews_and_does_not_duplicate(world: World) -> None:
    sid = _publish(world)
    first = world.alice.studies.join(sid)
    again = world.alice.studies.join(sid)
    assert first.participants == again.participants == 1
    r = httpx.get(world.url + "/v1/nothing", timeout=10)
    assert (r.status_code, r.json()["error"]) == (404, "not_found")
