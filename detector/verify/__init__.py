"""Line-verification requests to the carrier–police platform (docs/verification.md).

Entry points:
- ``enqueue(conn, flags, flag_ids, rigs)``: the outbox rows of new flags, inside
  ``checkpoint.save``'s transaction (written once :func:`configure` enabled it);
- ``run_sender(pool, config, stopping)``: delivers the outbox (signed, retried, dead letters);
- ``handle_status`` / ``status_routes``: the platform's status callbacks;
- ``outbox_summary(pool)``: depth, oldest pending, dead letters, for ``goipwatch status``;
- ``SenderConfig.from_toml(table, where)``: the ``[verification]`` table;
- ``verify_signature``: the signature and replay check of the receiving side.
"""

from detector.verify.config import SenderConfig
from detector.verify.outbox import configure, configured, enqueue, outbox_summary, requeue_dead
from detector.verify.policy import ActionPolicy, Decision, decide
from detector.verify.signing import sign, signature_problem, signed_headers, verify_signature

_LAZY = {"backoff": "sender", "run_sender": "sender", "handle_status": "status",
         "status_routes": "status"}  # these need aiohttp: imported on first use


def __getattr__(name: str):
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(f"detector.verify.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'detector.verify' has no attribute {name!r}")


__all__ = ["ActionPolicy", "Decision", "SenderConfig", "backoff", "configure", "configured",
           "decide", "enqueue", "handle_status", "outbox_summary", "requeue_dead", "run_sender",
           "sign", "signature_problem", "signed_headers", "status_routes", "verify_signature"]
