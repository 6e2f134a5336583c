"""``rotate``: a patient's new master secret; ``member rotate-keys``: a member's new keys;
and the patient's note when its client re-issued grants to members that rotated (run by
``grant list`` and ``recover``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from emrshare.cli._context import JsonOpt, emit_json, err, out, state, want_json

if TYPE_CHECKING:
    from emrshare.roles import OperationResult, Patient


def member_rotate_keys(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Replace this member's Umbral and box keys (same address); resumable.

    The old keystore is kept as ``keystore.json.pre-rotation`` until the new keys are on
    chain; an interrupted rotation is finished by running the command again.
    """
    from emrshare.crypto import MemberKeys
    from emrshare.errors import InvalidInput
    from emrshare.roles._rotation import rotate_member_keystore

    st = state(ctx)
    profile = st.profile()
    if not isinstance(st.keys(), MemberKeys):
        raise InvalidInput(
            f"profile {st.profile_name!r} is a patient: a member rotates its keys here; "
            "a patient's master secret rotation is another operation"
        )
    new = rotate_member_keystore(st.network(), profile.keystore_path, st.password())
    receiving = new.receiving_public_key.to_compressed_bytes().hex()
    if want_json(ctx, json_out):
        emit_json({"address": new.address, "receiving_key": "0x" + receiving})
        return
    out.print(
        f"rotated the keys of {new.address}: the old keys open nothing new from this block "
        "on; patients' clients re-issue their grants to the new keys"
    )


def refresh_rotated(p: Patient, *, quiet: bool = False) -> OperationResult | None:
    """Run ``p.refresh_rotated()`` and say on stderr what it re-issued (unless quiet)."""
    done = p.refresh_rotated()
    if done is not None and not quiet:
        err.print(
            f"followed members' key rotations: {done.sent} transaction(s) re-issued grants "
            "or writer authorizations to their new keys"
        )
    return done


def rotate(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Rotate the patient's master secret (after a suspected leak); resumable.

    Every category moves to a new epoch under the new master, grants are re-issued and
    writers re-authorized; the address stays. The NEW mnemonic is shown once: back it up,
    the old one opens nothing written from now on. Interrupted: run it again.
    """
    from emrshare.crypto import PatientKeys, save_keystore
    from emrshare.roles._rotation import keystore_kdf_limits

    st = state(ctx)
    p = st.patient()
    profile, password = st.profile(), st.password()

    def step(done: int, total: int | None) -> None:
        err.print(f"rotate: step {done} of {total} done")

    def save(keys: PatientKeys) -> None:  # same password and KDF cost as before
        ops, mem = keystore_kdf_limits(profile.keystore_path)
        save_keystore(profile.keystore_path, keys, password, opslimit=ops, memlimit=mem)

    words = p.rotate(progress=None if want_json(ctx, json_out) else step, on_done=save)
    if want_json(ctx, json_out):
        emit_json({"address": p.address, "mnemonic": words})
        return
    err.print("the key rotation is done; your NEW mnemonic (shown once, back it up):")
    err.print(f"  {words}", markup=False)
    out.print(f"rotated the master secret of {p.address}")
