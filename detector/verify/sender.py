"""The sender: delivers the outbox to the platform, with retries and dead letters.

``concurrency`` workers each claim one due request at a time (``FOR UPDATE SKIP LOCKED``, so
several senders, even in several processes, never take the same one), mark it ``sending``
with a lease, POST it signed, and record the result:

- 2xx, or 409 (the platform already has this idempotency key): ``delivered``;
- 400, 413, 415, 422 (the platform refuses this body for good): ``dead`` at once;
- anything else (5xx, 401/403/404, 408, 429, timeouts, refused connections): due again
  after a backoff with full jitter, ``uniform(0, min(cap, base * 2**(attempt-1)))`` (at
  least the ``Retry-After`` of a 429/503, capped), and ``dead`` after ``max_attempts``.

A sender that dies mid-request leaves the row ``sending``; when its lease (timeout + 30 s)
expires, the row is due again and another attempt is made under the same idempotency key.

Logs carry request ids, attempts, HTTP statuses and counts: never the secret, never a line.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass

import aiohttp
import asyncpg

from detector.verify.config import SenderConfig
from detector.verify.signing import IDEMPOTENCY_HEADER, signed_headers

log = logging.getLogger("goipwatch.verify")

PERMANENT = frozenset({400, 413, 415, 422})
DELIVERED_CONFLICT = 409


@dataclass(frozen=True, slots=True)
class Attempt:
    delivered: bool
    permanent: bool = False
    status: int | None = None
    error: str = ""
    retry_after: float | None = None


def backoff(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Full-jitter delay before retry number ``attempt`` (1 = after the first failure)."""
    top = min(cap, base * 2 ** min(max(attempt - 1, 0), 60))
    return (rng or random).uniform(0, top)


async def run_sender(pool: asyncpg.Pool, config: SenderConfig, stopping: asyncio.Event) -> None:
    """Deliver due requests until ``stopping`` is set; requests in flight are finished (each
    within ``timeout_s``) and recorded before returning."""
    secret = config.load_secret()
    wake = asyncio.Event()

    async def relay_stop() -> None:
        await stopping.wait()
        wake.set()

    timeout = aiohttp.ClientTimeout(total=config.timeout_s)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        relay = asyncio.create_task(relay_stop())
        workers = [asyncio.create_task(_worker(pool, http, config, secret, stopping, wake))
                   for _ in range(config.concurrency)]
        log.info("verification sender started", extra={"concurrency": config.concurrency})
        try:
            await asyncio.gather(*workers)
        finally:
            for t in [relay, *workers]:
                t.cancel()
            await asyncio.gather(relay, *workers, return_exceptions=True)
    log.info("verification sender stopped")


async def _worker(pool, http, config: SenderConfig, secret: bytes, stopping: asyncio.Event,
                  wake: asyncio.Event) -> None:
    while not stopping.is_set():
        try:
            row = await _claim(pool, config.lease_s)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
            log.warning("verification sender cannot reach the store", extra={"error": type(e).__name__})
            await _sleep(wake, config.poll_s)
            continue
        if row is None:
            await _sleep(wake, config.poll_s)
            continue
        if not stopping.is_set():  # more may be due: wake the idle workers
            wake.set()
            wake.clear()
        result = await post(http, config, secret, row["idempotency_key"], row["body"].encode())
        await _record(pool, config, row, result)


async def _sleep(wake: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(wake.wait(), seconds)
    except TimeoutError:
        pass


async def _claim(pool: asyncpg.Pool, lease_s: float):
    return await pool.fetchrow(
        "UPDATE verification_outbox o SET status = 'sending', attempts = o.attempts + 1, "
        "next_attempt_at = clock_timestamp() + make_interval(secs => $1) "
        "WHERE o.id = (SELECT id FROM verification_outbox WHERE status IN ('pending', 'sending') "
        "AND next_attempt_at <= clock_timestamp() ORDER BY next_attempt_at, id LIMIT 1 "
        "FOR UPDATE SKIP LOCKED) "
        "RETURNING o.id, o.request_id, o.idempotency_key, o.body::text AS body, o.attempts",
        float(lease_s))


async def post(http: aiohttp.ClientSession, config: SenderConfig, secret: bytes, key: str,
               body: bytes) -> Attempt:
    """One signed POST of ``body``."""
    headers = {"Content-Type": "application/json", IDEMPOTENCY_HEADER: key,
               **signed_headers(secret, int(time.time()), body)}
    try:
        async with http.post(config.url, data=body, headers=headers, allow_redirects=False) as resp:
            await resp.content.read(65536)
            status = resp.status
            retry_after = _retry_after(resp.headers.get("Retry-After"))
    except TimeoutError:
        return Attempt(False, error=f"timeout after {config.timeout_s:g} s")
    except aiohttp.ClientError as e:
        return Attempt(False, error=type(e).__name__)
    except (OSError, ValueError) as e:  # e.g. an unresolvable name, a bad certificate
        return Attempt(False, error=type(e).__name__)
    if 200 <= status < 300 or status == DELIVERED_CONFLICT:
        return Attempt(True, status=status)
    return Attempt(False, permanent=status in PERMANENT, status=status, error=f"HTTP {status}",
                   retry_after=retry_after)


def _retry_after(value: str | None) -> float | None:
    if value and value.strip().isdigit():
        return float(value.strip())
    return None


async def _record(pool: asyncpg.Pool, config: SenderConfig, row, result: Attempt) -> None:
    rid, attempts = row["request_id"], row["attempts"]
    guard = "WHERE id = $1 AND status = 'sending' AND attempts = $2"
    for delay in (0.2, 1.0, 5.0, None):  # the store may blink: the lease covers a lost write
        try:
            if result.delivered:
                await pool.execute(
                    "UPDATE verification_outbox SET status = 'delivered', delivered_at = now(), "
                    f"last_status = $3, last_error = NULL {guard}", row["id"], attempts, result.status)
                log.info("verification request delivered",
                         extra={"request_id": str(rid), "attempts": attempts, "status": result.status})
            elif result.permanent or attempts >= config.max_attempts:
                await pool.execute(
                    "UPDATE verification_outbox SET status = 'dead', last_status = $3, "
                    f"last_error = $4 {guard}", row["id"], attempts, result.status, result.error)
                log.warning("verification request dead-lettered",
                            extra={"request_id": str(rid), "attempts": attempts, "error": result.error})
            else:
                wait = backoff(attempts, config.backoff_base_s, config.backoff_cap_s)
                if result.retry_after is not None:
                    wait = max(wait, min(result.retry_after, config.backoff_cap_s))
                await pool.execute(
                    "UPDATE verification_outbox SET status = 'pending', last_status = $3, "
                    "last_error = $4, next_attempt_at = clock_timestamp() + make_interval(secs => $5) "
                    f"{guard}", row["id"], attempts, result.status, result.error, wait)
                log.debug("verification request failed, will retry",
                         extra={"request_id": str(rid), "attempts": attempts, "error": result.error,
                                "retry_in_s": round(wait, 3)})
            return
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
            if delay is None:
                log.warning("verification result not recorded; the lease will retry it",
                            extra={"request_id": str(rid), "error": type(e).__name__})
                return
            await asyncio.sleep(delay)
