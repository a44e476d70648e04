"""Operations endpoints of the daemon: ``/livez``, ``/readyz`` and Prometheus ``/metrics``.

Served on their own listener (``[ops]``, loopback by default) without authentication, so that
systemd, a load balancer or Prometheus can reach them without police credentials; they carry
no subscriber data: labels are probe names, Kafka topics, flag kinds, outbox states and HTTP
statuses only. docs/operations.md lists every metric.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

from detector.metrics import AUDIT_RECHAINED, AUTH_LOCKOUTS, LOCKOUT_SCOPES, LOOKUP_SECONDS
from detector.tomltable import typed_values
from probes.interface import ReportsHealth, ReportsLag

if TYPE_CHECKING:
    from detector.daemon import Daemon


@dataclass(frozen=True, slots=True)
class OpsConfig:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 9108

    @classmethod
    def from_toml(cls, table: dict, where: str = "ops") -> OpsConfig:
        out = cls(**typed_values(cls, table, where))
        if not 0 <= out.port <= 65535:
            raise ValueError(f"{where}.port: must be 0 to 65535")
        return out


def _line(name: str, value: float, labels: dict[str, str] | None = None) -> str:
    if labels:
        inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        return f"{name}{{{inner}}} {value}"
    return f"{name} {value}"


async def metrics_text(daemon: Daemon) -> str:
    """The Prometheus exposition of the daemon's state (committed counters from the store)."""
    out: list[str] = []

    def metric(name: str, kind: str, help_: str, samples: list[tuple[dict, float]]) -> None:
        out.append(f"# HELP {name} {help_}")
        out.append(f"# TYPE {name} {kind}")
        out.extend(_line(name, v, labels) for labels, v in samples)

    pool = daemon.pool
    counters = json.loads(await pool.fetchval(
        "SELECT value FROM engine_state WHERE key = 'counters'") or "{}")
    for key, name, help_ in (("records", "records_total", "records applied"),
                             ("rejected", "records_quarantined_total", "rows quarantined"),
                             ("messages", "messages_total", "stream messages taken in"),
                             ("files", "files_total", "files taken in"),
                             ("files_rejected", "files_rejected_total", "files rejected whole")):
        metric(f"goipwatch_{name}", "counter", f"{help_}, per probe",
               [({"probe": p}, c.get(key, 0)) for p, c in sorted(counters.items())])
    flags = await pool.fetch("SELECT kind, count(*) n FROM flags GROUP BY kind ORDER BY kind")
    metric("goipwatch_flags", "gauge", "flagged SIMs, per kind",
           [({"kind": r["kind"]}, r["n"]) for r in flags])
    cal = daemon.pipe.calibrator
    if cal is not None:
        now = cal.status()
        metric("goipwatch_calibration_calibrated", "gauge",
               "1 while the scorer uses a model calibrated to the watched population, 0 with the prior",
               [({}, int(now["model"] == "calibrated"))])
        metric("goipwatch_calibration_sim_days", "gauge",
               "SIM-days the calibrated model learnt from", [({}, now["sim_days"])])
        metric("goipwatch_calibration_drift", "gauge",
               "how far the live population lies from the prior's, per feature "
               "(largest |log ratio| of median and 99th percentile)",
               [({"feature": f}, v) for f, v in sorted(now["drift"].items())])
        metric("goipwatch_calibration_drifting_features", "gauge",
               "features beyond the drift alert", [({}, len(now["drifting"]))])
    size = daemon.engine.state_bytes()
    metric("goipwatch_feature_sims", "gauge", "SIMs in the feature state", [({}, size["sims"])])
    metric("goipwatch_feature_state_bytes", "gauge", "bytes of feature state", [({}, size["bytes"])])
    lag = time.time() - daemon.engine.watermark if daemon.engine.watermark else 0
    metric("goipwatch_event_time_lag_seconds", "gauge",
           "wall clock minus the newest event time taken in", [({}, round(lag, 3))])
    now = time.time()
    metric("goipwatch_input_event_time_lag_seconds", "gauge",
           "wall clock minus the newest event time taken in, per probe",
           [({"probe": p}, round(now - t, 3)) for p, t in sorted(daemon.newest.items())])
    metric("goipwatch_input_up", "gauge", "1 while the input answers, 0 while it is failing",
           [({"probe": p.name}, int(p.health.up)) for p in daemon.probes
            if isinstance(p, ReportsHealth)])
    if daemon.supervisor is not None:
        metric("goipwatch_probe_failures_total", "counter",
               "times a probe's task failed (and was started again), per probe",
               [({"probe": n}, h.failures) for n, h in sorted(daemon.supervisor.health.items())])
    metric("goipwatch_kafka_lag_messages", "gauge",
           "messages on the brokers not yet committed to the store, per probe and topic",
           [({"probe": p.name, "topic": t}, n) for p in daemon.probes if isinstance(p, ReportsLag)
            for t, n in sorted(p.lag().items())])
    stats = daemon.pipe.stats
    metric("goipwatch_scoring_seconds_total", "counter", "time spent scoring ticks",
           [({}, round(stats["seconds"], 6))])
    metric("goipwatch_scoring_ticks_total", "counter", "scoring ticks", [({}, stats["ticks"])])
    out.extend(daemon.pipe.tick_seconds.exposition(
        "goipwatch_scoring_tick_seconds", "time of each scoring tick"))
    out.extend(daemon.checkpoint_seconds.exposition(
        "goipwatch_checkpoint_seconds", "time of each checkpoint commit"))
    out.extend(LOOKUP_SECONDS.exposition(
        "goipwatch_lookup_seconds", "time to answer a subscriber lookup, per HTTP status"))
    out.extend(AUTH_LOCKOUTS.exposition(
        "goipwatch_auth_lockouts_total", "authentication lockouts started, per scope (source "
        "address, named client)", LOCKOUT_SCOPES))
    out.extend(AUDIT_RECHAINED.exposition(
        "goipwatch_audit_rechained_total", "audit groups chained again on a head another "
        "process had moved (then the head is locked first for a while)", ({},)))
    outbox = await pool.fetch("SELECT status, count(*) n, "
                              "extract(epoch FROM now() - min(created_at)) age "
                              "FROM verification_outbox GROUP BY status")
    metric("goipwatch_outbox_requests", "gauge", "verification requests, per status",
           [({"status": r["status"]}, r["n"]) for r in outbox])
    pending_age = max((float(r["age"] or 0) for r in outbox if r["status"] == "pending"), default=0)
    metric("goipwatch_outbox_oldest_pending_seconds", "gauge",
           "age of the oldest undelivered request", [({}, round(pending_age, 3))])
    return "\n".join(out) + "\n"


def failing_inputs(daemon: Daemon) -> list[dict[str, str]]:
    """Each probe that fails, with why: its task failed and has not run well since (which
    makes the daemon unready), or its input fails (a broker down, an unreadable drop
    directory), which is reported but no reason to be taken out of service: the daemon still
    answers lookups and resumes the input when it is back."""
    failing = {h.probe: h.error for h in daemon.failing_probes()}
    for p in daemon.probes:
        if isinstance(p, ReportsHealth) and not p.health.up:
            failing.setdefault(p.name, p.health.reason)
    return [{"probe": name, "error": error} for name, error in sorted(failing.items())]


def make_ops_app(daemon: Daemon) -> web.Application:
    async def livez(_: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})   # answering at all: the loop runs

    async def readyz(_: web.Request) -> web.Response:
        checks = {"store": False, "probes": daemon.probes_running()}
        try:
            checks["store"] = await daemon.pool.fetchval("SELECT 1") == 1
        except Exception:  # a store that does not answer is what readiness reports
            checks["store"] = False
        ready = all(checks.values())
        return web.json_response({"ready": ready, "checks": checks,
                                  "failing_inputs": failing_inputs(daemon)},
                                 status=200 if ready else 503)

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(text=await metrics_text(daemon),
                            content_type="text/plain", charset="utf-8")

    app = web.Application()
    app.router.add_get("/livez", livez)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app


async def start_ops(daemon: Daemon, config: OpsConfig) -> web.AppRunner:
    runner = web.AppRunner(make_ops_app(daemon), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port)
    await site.start()
    return runner
