"""The cryptographic core: pure code, no network, no chain (files only in the keystore).

Other layers use these recipes; formats are documented in ``docs/formats.md`` and the
security argument in ``docs/threat-model.md``.

Keys (:mod:`.keys`, :mod:`.keystore`)
    ``PatientKeys(master_secret)`` / ``.generate(rng=)`` / ``.from_mnemonic(words)`` /
    ``.from_shamir_shares(shares, passphrase=)``; ``.to_mnemonic()``,
    ``.to_shamir_shares(m, n)``; ``.delegating_secret_key(category, epoch)``,
    ``.category_public_key(category, epoch)``, ``.tag(category, epoch) -> CategoryTag``,
    ``.signer()``, ``.verifying_key``, ``.box_private_key``/``.box_public_key``,
    ``.ethereum_key``, ``.address``, ``.public_keys() -> PatientPublicKeys``.
    ``MemberKeys(seed, ethereum_key=None)`` / ``.generate(rng=)``:
    ``.receiving_secret_key``/``.receiving_public_key``, ``.box_private_key``/
    ``.box_public_key``, ``.ethereum_key``, ``.address``, ``.public_keys() ->
    MemberPublicKeys``. Both public bundles round trip through ``bytes``/``from_bytes``.
    ``save_keystore(path, keys, password)``, ``load_patient_keystore(path, password)``,
    ``load_member_keystore(path, password)``.

Record envelope (:mod:`.envelope`)
    ``DataKey.generate()``; ``encrypt_stream(source, key, record_id, chunk_size=, suite=)``
    (suite 1 XChaCha20-Poly1305 by default, ``SUITE_AES256GCM`` for FIPS sites) and
    ``decrypt_stream(source, key, record_id)`` yield bytes from a file object or an
    iterable of bytes; ``encrypt_file(src, dst, ...)``/``decrypt_file`` return
    ``EnvelopeInfo(plaintext_size, ciphertext_size, plaintext_sha256)``;
    ``encrypt_bytes``/``decrypt_bytes`` for small values.

Index entries (:mod:`.entry`)
    ``IndexEntry.create(patient=, record_id=, cid=, data_key=, plaintext_sha256=, size=,
    media_type=, category=, epoch=, created_at=, author_key=)``; ``entry.verify_author(patient)``;
    ``seal_entry(entry, category_public_key) -> SealedEntry``; ``bytes(sealed)``,
    ``SealedEntry.from_bytes(b)``, ``.capsule``, ``.capsule_hash`` (keccak256);
    ``open_entry(sealed, patient_keys, category, epoch)``.

Grants (:mod:`.grants`)
    ``make_grant(patient_keys, category=, epoch=, policy_id=, grantee=MemberPublicKeys,
    proxies=[MemberPublicKeys], threshold=) -> Grant`` (``sealed_kfrags`` aligned with
    ``proxies``, ``sealed_grantee_map``). Proxy: ``open_sealed_kfrag(sealed, proxy_keys)
    -> ProxyKeyFrag``; ``.verify(patient_verifying_key=, policy_id=, patient=, grantee=,
    tag=, epoch=, grantee_receiving_key=) -> VerifiedProxyKeyFrag``; ``bytes()`` of it
    reloads via ``ProxyKeyFrag.from_bytes``; ``reencrypt(capsule, verified_kfrag)``.
    Requester: ``open_grantee_map(sealed, grantee_keys, patient_verifying_key=)``,
    ``verify_cfrags(capsule, {proxy: bytes}, grantee_map, receiving_public_key) ->
    CfragCheck(verified, failed)``, ``open_entry_as_grantee(sealed, grantee_keys,
    grantee_map, verified_cfrags)``.

Writers (:mod:`.writers`) and sealing (:mod:`.sealing`)
    ``seal_writer_authorization(patient_keys, writer_public_keys, category, epoch) -> bytes``;
    ``open_writer_authorization(sealed, writer_keys, patient_verifying_key=)``.
    ``seal(box_public_key, brand, payload)`` / ``open_sealed(box_private_key, brand, data,
    what=)``: NaCl sealed boxes with a brand/version header.
"""

from emrshare.crypto.entry import (
    EntryContext,
    IndexEntry,
    SealedEntry,
    author_digest,
    open_entry,
    open_entry_reencrypted,
    seal_entry,
)
from emrshare.crypto.envelope import (
    DEFAULT_CHUNK_SIZE,
    SUITE_AES256GCM,
    SUITE_XCHACHA20POLY1305,
    DataKey,
    EnvelopeInfo,
    ciphertext_size,
    decrypt_bytes,
    decrypt_file,
    decrypt_stream,
    encrypt_bytes,
    encrypt_file,
    encrypt_stream,
)
from emrshare.crypto.grants import (
    CfragCheck,
    Grant,
    GranteeMap,
    PolicyBinding,
    ProxyKeyFrag,
    VerifiedProxyKeyFrag,
    make_grant,
    open_entry_as_grantee,
    open_grantee_map,
    open_sealed_kfrag,
    reencrypt,
    verify_cfrags,
)
from emrshare.crypto.keys import (
    MemberKeys,
    MemberPublicKeys,
    PatientKeys,
    PatientPublicKeys,
    category_label,
    validate_category,
)
from emrshare.crypto.keystore import (
    load_keystore,
    load_member_keystore,
    load_patient_keystore,
    save_keystore,
)
from emrshare.crypto.sealing import open_sealed, seal
from emrshare.crypto.writers import (
    WriterAuthorization,
    open_writer_authorization,
    seal_writer_authorization,
)

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "SUITE_AES256GCM",
    "SUITE_XCHACHA20POLY1305",
    "CfragCheck",
    "DataKey",
    "EnvelopeInfo",
    "Grant",
    "GranteeMap",
    "EntryContext",
    "IndexEntry",
    "MemberKeys",
    "MemberPublicKeys",
    "PatientKeys",
    "PatientPublicKeys",
    "PolicyBinding",
    "ProxyKeyFrag",
    "SealedEntry",
    "VerifiedProxyKeyFrag",
    "WriterAuthorization",
    "author_digest",
    "category_label",
    "ciphertext_size",
    "decrypt_bytes",
    "decrypt_file",
    "decrypt_stream",
    "encrypt_bytes",
    "encrypt_file",
    "encrypt_stream",
    "load_keystore",
    "load_member_keystore",
    "load_patient_keystore",
    "make_grant",
    "open_entry",
    "open_entry_as_grantee",
    "open_entry_reencrypted",
    "open_grantee_map",
    "open_sealed",
    "open_sealed_kfrag",
    "open_writer_authorization",
    "reencrypt",
    "save_keystore",
    "seal",
    "seal_entry",
    "seal_writer_authorization",
    "validate_category",
    "verify_cfrags",
]
