"""The patient's side of a relay: hand a signed request over HTTP (a
:class:`~emrshare.chain.relayed.Submitter`)."""

from __future__ import annotations

from typing import Any

import httpx

from emrshare.chain.forwarding import ForwardRequest
from emrshare.errors import ContractRevert, RelayError

__all__ = ["HttpRelay"]


def _shown(url: str) -> str:
    """The URL without credentials or path (a hosted relay's URL may carry a key)."""
    parsed = httpx.URL(url)
    return f"{parsed.scheme}://{parsed.host}" + (f":{parsed.port}" if parsed.port else "")


class HttpRelay:
    """A relay service at ``url`` (``http://127.0.0.1:8650``)."""

    def __init__(self, url: str, *, timeout: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"HttpRelay({_shown(self.url)})"

    def submit(self, request: ForwardRequest, signature: bytes) -> bytes | None:
        """POST the request; the hash of the relay's transaction (a hint). A refusal
        raises :class:`ContractRevert` (``would_revert``) or :class:`RelayError`."""
        body = {"request": request.to_json(), "signature": "0x" + signature.hex()}
        where = _shown(self.url)
        try:
            r = httpx.post(f"{self.url}/v1/relay", json=body, timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise RelayError(
                "unreachable",
                f"the relay at {where} did not answer ({type(exc).__name__}); start it "
                "(emrshare relay serve) or name another with --relay",
            ) from exc
        answer = _json(r)
        if r.status_code == 200:
            tx = answer.get("tx_hash")
            return bytes.fromhex(tx[2:]) if isinstance(tx, str) and tx.startswith("0x") else None
        reason = str(answer.get("error") or f"http_{r.status_code}")
        detail = str(answer.get("detail") or r.text[:200])
        revert = answer.get("revert")
        if reason == "would_revert" and isinstance(revert, dict) and "name" in revert:
            args = revert.get("args") if isinstance(revert.get("args"), dict) else {}
            raise ContractRevert(str(revert["name"]), args)
        raise RelayError(
            reason,
            f"the relay at {where} refused the operation ({reason}): {detail}",
            retry_after=_seconds(r.headers.get("Retry-After")),
        )


def _seconds(value: str | None) -> float | None:
    """A ``Retry-After`` header's delay in seconds (only the delta-seconds form)."""
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and 0 <= seconds <= 3600 else None


def _json(r: httpx.Response) -> dict[str, Any]:
    try:
        data = r.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
