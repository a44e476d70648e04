"""Limits on failed authentication, apart from the clients' working rate limits.

Every failed attempt (a wrong client secret, an unknown bearer token or certificate, no
credential at all) spends a token of the **source address**'s failure bucket and, when it
names a client (``POST /oauth/token``, the console's login), of that **client**'s failure
bucket. Neither is the bucket a client's valid requests spend, so a flood of failures never
slows them.

- An address whose failure bucket is empty is locked out: its secret checks are refused
  (``429 too_many_failures``) before the secret is compared, and its unknown tokens too.
  A valid bearer token from it is still honoured (a token is checked, not guessed).
- A client whose failure bucket is empty (many addresses guessing its secret) is locked out
  for every address that has not authenticated as that client before (the platform's own
  addresses, remembered in memory, keep working): a distributed guess is slowed to the
  bucket's refill and the real client is not locked out.

A lockout starts when a failure empties a bucket; :meth:`FailureGuard.failed` returns it so
the caller can audit it, once per lockout, with the attempts refused during the one before.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from detector.api.ratelimit import RateLimiter

KNOWN_PER_CLIENT = 16


@dataclass(frozen=True, slots=True)
class Lockout:
    scope: str            # address, client
    key: str              # the address or the client id
    retry_after_s: float
    refused_before: int   # attempts refused during this key's previous lockout


class FailureGuard:
    def __init__(self, rate_per_s: float, burst: int, clock=time.monotonic) -> None:
        self._limits = RateLimiter(rate_per_s, burst, clock=clock)
        self._known: dict[str, list[str]] = {}     # client id -> addresses it authenticated from
        self._refused: dict[str, int] = {}         # bucket key -> attempts refused while locked
        self.lockouts = 0                          # lockouts started in this process
        self.refused = 0                           # attempts refused while locked out

    @staticmethod
    def _keys(remote: str, client_id: str | None) -> list[tuple[str, str, str]]:
        keys = [("address", remote, "ip:" + remote)]
        if client_id:
            keys.append(("client", client_id, "client:" + client_id[:128]))
        return keys

    def blocked(self, remote: str, client_id: str | None = None) -> float:
        """Seconds until ``remote`` may try (a secret of ``client_id``) again; 0: it may now.
        A refusal is counted against the lockout that caused it."""
        for scope, key, bucket in self._keys(remote, client_id):
            if scope == "client" and remote in self._known.get(key, ()):
                continue          # an address the client has used: never locked out by others
            wait = self._limits.peek(bucket)
            if wait > 0:
                self._refused[bucket] = self._refused.get(bucket, 0) + 1
                self.refused += 1
                return wait
        return 0.0

    def failed(self, remote: str, client_id: str | None = None) -> list[Lockout]:
        """Count a failed attempt; the lockouts it starts."""
        out = []
        for scope, key, bucket in self._keys(remote, client_id):
            if self._limits.take(bucket) > 0:
                continue          # already empty (the caller did not ask blocked() first)
            wait = self._limits.peek(bucket)
            if wait > 0:          # this failure emptied the bucket
                self.lockouts += 1
                out.append(Lockout(scope, key, wait, self._refused.pop(bucket, 0)))
        return out

    def succeeded(self, remote: str, client_id: str) -> None:
        """Remember that ``remote`` authenticated as ``client_id`` (the newest few)."""
        known = self._known.setdefault(client_id, [])
        if remote in known:
            return
        known.append(remote)
        del known[:-KNOWN_PER_CLIENT]
        if len(self._known) > 100_000:      # bounded memory, whatever clients are named
            self._known = {client_id: known}
