"""The patient-state log's entries: what the chain does not otherwise hold about a
patient, sealed so only its master secret opens it (``PatientProfiles.logState``).

An entry is a whole snapshot, not a delta, so the newest entry that opens is the state:

- ``epochs``: the current epoch of every category the patient has used;
- ``retired``: earlier master secrets (after ``emrshare rotate``), oldest first, each with
  the last epoch of every category sealed under it, so records of those epochs stay
  readable from the current mnemonic alone.

Format: ``header("EMST", 1, 0) || nonce(24) || XChaCha20-Poly1305(state_log_key, padded)``
with the header as associated data, and the CBOR body padded to a multiple of
:data:`BUCKET` bytes: an observer learns that the patient's state changed and roughly how
much it holds, not which categories. Any change of a bit fails to open
(:class:`DecryptionError`); an entry sealed under another master (another patient, or this
patient before a rotation) fails the same way, and readers skip it.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field

import nacl.exceptions
import nacl.secret
import nacl.utils

from emrshare.crypto._wire import (
    HEADER_SIZE,
    cbor_decode_list,
    cbor_encode,
    expect_bytes,
    expect_int,
    header,
    split_header,
)
from emrshare.crypto.keys import MASTER_SECRET_SIZE, MAX_EPOCH, validate_category
from emrshare.errors import DecryptionError, WireFormatError

__all__ = [
    "BUCKET",
    "MAX_STATE_BYTES",
    "PatientState",
    "RetiredMaster",
    "epochs_digest",
    "open_state",
    "seal_state",
]

_BRAND = b"EMST"
#: Entries are padded to a multiple of this many bytes.
BUCKET = 256
#: The contract's limit (``PatientProfiles.MAX_STATE_BYTES``).
MAX_STATE_BYTES = 4096
_NONCE = nacl.secret.Aead.NONCE_SIZE
_OVERHEAD = HEADER_SIZE + _NONCE + nacl.secret.Aead.MACBYTES


def _check_epochs(epochs: dict[str, int], what: str) -> dict[str, int]:
    out = {}
    for name, epoch in epochs.items():
        out[validate_category(name)] = expect_int(epoch, f"{what}: epoch of {name!r}", 0, MAX_EPOCH)
    return dict(sorted(out.items()))


@dataclass(frozen=True, slots=True)
class RetiredMaster:
    """A master secret the patient rotated away from, and the last epoch of each category
    sealed under it. **Secret**: the repr shows only the categories."""

    master_secret: bytes = field(repr=False)
    epochs: dict[str, int]

    def __post_init__(self) -> None:
        expect_bytes(self.master_secret, "a retired master secret", MASTER_SECRET_SIZE)
        object.__setattr__(self, "epochs", _check_epochs(self.epochs, "a retired master"))


@dataclass(frozen=True, slots=True)
class PatientState:
    """A patient's categories with their current epochs, and its retired masters."""

    epochs: dict[str, int]
    retired: tuple[RetiredMaster, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "epochs", _check_epochs(self.epochs, "a patient state"))
        object.__setattr__(self, "retired", tuple(self.retired))

    def merged(self, other: PatientState) -> PatientState:
        """Both states at once: every category at the higher epoch (epochs only grow),
        the retired masters of both (the longer history wins where they differ)."""
        epochs = dict(self.epochs)
        for name, epoch in other.epochs.items():
            epochs[name] = max(epoch, epochs.get(name, 0))
        retired = self.retired if len(self.retired) >= len(other.retired) else other.retired
        return PatientState(epochs, retired)


def _encode(state: PatientState) -> bytes:
    return cbor_encode(
        [
            1,
            [[name, epoch] for name, epoch in state.epochs.items()],
            [[r.master_secret, [[n, e] for n, e in r.epochs.items()]] for r in state.retired],
        ]
    )


def _pairs(value: object, what: str) -> dict[str, int]:
    if not isinstance(value, list):
        raise WireFormatError(f"{what}: expected a list of [category, epoch]")
    out: dict[str, int] = {}
    for item in value:
        if not isinstance(item, list) or len(item) != 2 or not isinstance(item[0], str):
            raise WireFormatError(f"{what}: expected [category, epoch] pairs")
        out[item[0]] = expect_int(item[1], what, 0, MAX_EPOCH)
    return out


def _decode(body: bytes) -> PatientState:
    version, epochs, retired = cbor_decode_list(body, "a patient state", 3)
    if version != 1:
        raise WireFormatError("a patient state: unknown body version")
    if not isinstance(retired, list):
        raise WireFormatError("a patient state: expected a list of retired masters")
    old = []
    for item in retired:
        if not isinstance(item, list) or len(item) != 2:
            raise WireFormatError("a patient state: a retired master is [secret, epochs]")
        old.append(
            RetiredMaster(
                expect_bytes(item[0], "a retired master", 32), _pairs(item[1], "a retired master")
            )
        )
    return PatientState(_pairs(epochs, "a patient state"), tuple(old))


def epochs_digest(key: bytes, epochs: dict[str, int]) -> bytes:
    """A keyed digest of a set of epochs (HMAC-SHA256 under ``key``, the state-log key):
    what a client keeps locally to see, without a chain read, whether its epochs differ
    from those it last published. It reveals nothing without the key."""
    body = cbor_encode([[name, epoch] for name, epoch in _check_epochs(epochs, "epochs").items()])
    return hmac.new(key, b"emrshare/state-log/epochs" + body, hashlib.sha256).digest()


def seal_state(key: bytes, state: PatientState) -> bytes:
    """Seal ``state`` under ``key`` (``PatientKeys.state_log_key``), padded.

    A state too large for one entry (about 150 categories) is a :class:`WireFormatError`.
    """
    body = _encode(state)
    n = 2 + len(body)
    size = -(-(n + _OVERHEAD) // BUCKET) * BUCKET - _OVERHEAD
    if size + _OVERHEAD > MAX_STATE_BYTES:
        raise WireFormatError(
            f"the patient state ({len(state.epochs)} categories) does not fit one "
            f"{MAX_STATE_BYTES}-byte state-log entry"
        )
    padded = len(body).to_bytes(2, "big") + body + bytes(size - n)
    head = header(_BRAND, 1, 0)
    box = nacl.secret.Aead(key)
    nonce = nacl.utils.random(_NONCE)
    return head + bytes(box.encrypt(padded, head, nonce))


def open_state(key: bytes, sealed: bytes) -> PatientState:
    """Open an entry made by :func:`seal_state`. :class:`DecryptionError` if it was not
    sealed under ``key`` or was changed; :class:`WireFormatError` for another format."""
    _, body = split_header(sealed, _BRAND, 1, "patient-state entry")
    head = bytes(sealed[:HEADER_SIZE])
    try:
        padded = bytes(nacl.secret.Aead(key).decrypt(body, head))
    except (nacl.exceptions.CryptoError, ValueError, TypeError) as exc:
        raise DecryptionError() from exc
    n = int.from_bytes(padded[:2], "big")
    if 2 + n > len(padded) or any(padded[2 + n :]):
        raise WireFormatError("a patient-state entry: bad length or non-zero padding")
    return _decode(padded[2 : 2 + n])
