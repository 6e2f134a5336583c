"""The relay: a small service that pays the gas of patients' signed operations
(``emrshare relay serve``), and the client a patient hands its signed requests to.

Wire API (JSON over HTTP, loopback in tests):

- ``POST /v1/relay`` with ``{"request": ForwardRequest.to_json(), "signature": "0x…"}``.
  ``200 {"tx_hash": "0x…"}`` once the relay's transaction is mined. Refusals are 4xx
  ``{"error": reason, "detail": message}``: ``bad_request`` (400), ``would_revert`` (409,
  with ``"revert": {"name": …, "args": {…}}``: the ``eth_call`` the relay makes first
  reverted), ``not_relayed_here`` (403: the target is not one of the deployment's patient
  contracts), ``rate_limited`` (429, with ``Retry-After``: the patient's token bucket is
  empty or the relay is at its in-flight cap); ``chain_unavailable`` (503: the node is
  down or the relay could not send), ``internal_error`` (503).
- ``GET /v1/health``: ``{"chain_id", "forwarder", "relayer", "balance", "relayed"}``
  (balance in wei as a decimal string; operations relayed since start).

The service is :mod:`emrshare.relay.app` (``emrshare relay serve``; see docs/relay.md).

The client trusts none of it: :class:`emrshare.chain.relayed.ForwardingClient` finds the
operation on chain.
"""

from emrshare.relay.client import HttpRelay

__all__ = ["HttpRelay"]
