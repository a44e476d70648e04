"""HMAC-SHA256 request signatures with a timestamp (replay protection), both directions.

The signed message is ``"<timestamp>.<body>"`` (timestamp: whole seconds since the epoch as
decimal ASCII, body: the exact bytes sent); the header value is ``sha256=<hex digest>``. A
receiver recomputes it with the shared secret, compares in constant time, and refuses a
timestamp more than ``max_skew_s`` away from its own clock.
"""

from __future__ import annotations

import hashlib
import hmac

TIMESTAMP_HEADER = "X-Goipwatch-Timestamp"
SIGNATURE_HEADER = "X-Goipwatch-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
PREFIX = "sha256="


def _key(secret: bytes | str) -> bytes:
    return secret.encode() if isinstance(secret, str) else bytes(secret)


def sign(secret: bytes | str, timestamp: int | str, body: bytes) -> str:
    """The signature header value for ``body`` sent at ``timestamp``."""
    msg = str(timestamp).encode("ascii") + b"." + body
    return PREFIX + hmac.new(_key(secret), msg, hashlib.sha256).hexdigest()


def signed_headers(secret: bytes | str, timestamp: int, body: bytes) -> dict[str, str]:
    """Timestamp and signature headers (add Content-Type and Idempotency-Key yourself)."""
    return {TIMESTAMP_HEADER: str(int(timestamp)), SIGNATURE_HEADER: sign(secret, int(timestamp), body)}


def signature_problem(secret: bytes | str, timestamp: str | None, body: bytes,
                      signature: str | None, now: float, max_skew_s: float = 300.0) -> str | None:
    """Why the signature is refused, or None when it is good."""
    if not timestamp or not signature:
        return "missing timestamp or signature header"
    ts = timestamp.strip()
    if not ts.isascii() or not ts.isdigit() or len(ts) > 12:
        return "malformed timestamp"
    if abs(now - int(ts)) > max_skew_s:
        return "stale or future timestamp"
    if not signature.startswith(PREFIX):
        return "unsupported signature scheme"
    if not hmac.compare_digest(sign(secret, ts, body).encode(), signature.strip().encode()):
        return "signature does not match"
    return None


def verify_signature(secret: bytes | str, timestamp: str | None, body: bytes,
                     signature: str | None, now: float, max_skew_s: float = 300.0) -> bool:
    """True when ``signature`` is the HMAC of ``timestamp.body`` under ``secret`` and the
    timestamp lies within ``max_skew_s`` of ``now``."""
    return signature_problem(secret, timestamp, body, signature, now, max_skew_s) is None
