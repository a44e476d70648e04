"""``goipwatch status``: what the daemon has taken in, refused and flagged (from the store)."""

from __future__ import annotations

import json
import math

from detector.calibration import CalibrationPolicy
from detector.config import Config
from detector.records import iso
from detector.store.db import session
from detector.verify import outbox_summary
from detector.wording import counted


def print_calibration(row, policy: CalibrationPolicy) -> None:
    """The model in use and where the live population departs from the prior's."""
    if not policy.enabled:
        print("calibration: off (the configured model as it is)")
        return
    if row is None or not row["sim_days"]:
        print("calibration: the prior (the configured model) until the baseline is fitted")
        return
    drift = json.loads(row["drift"]) if row["drift"] else {}
    moved = sorted(((v, f) for f, v in drift.items() if v >= row["drift_alert"]), reverse=True)
    print(f"calibration: calibrated at {iso(row['fitted_at'])} on {row['sim_days']} SIM-days "
          f"({row['trimmed']} trimmed as rig-like, {row['excluded']} flagged SIMs left out); "
          f"next at {iso(row['next_fit'])}")
    if moved:
        print(f"  drift: {counted(len(moved), 'feature')} of the live population "
              f"{'lies' if len(moved) == 1 else 'lie'} beyond "
              f"{math.exp(row['drift_alert']):.0f}x the prior's percentiles: " +
              ", ".join(f"{f} ({math.exp(v):.1f}x)" for v, f in moved))
        print("  the reasons' yardstick follows the live population where it is more tolerant, "
              "the prior's elsewhere; a row must be anomalous to both forests")
    else:
        print("  drift: none beyond the alert")


async def status(config: Config, quarantine: int = 10) -> int:
    async with session(config.store, config.daemon.state_dir) as pool:
        files = await pool.fetch("SELECT probe, status, count(*) n, sum(records) r, "
                                 "sum(rejected) q FROM ingested_files GROUP BY 1, 2 ORDER BY 1, 2")
        print("files:")
        for f in files:
            print(f"  {f['probe']:<20} {f['status']:<10} {f['n']:>6} files "
                  f"{f['r'] or 0:>10} records {f['q'] or 0:>8} quarantined")
        probes = await pool.fetch("SELECT probe, state, failing, error, failures, since "
                                  "FROM probe_health ORDER BY probe")
        print("probes:")
        for h in probes:
            # a failing probe is the line an operator must not miss: it says so first
            mark = "FAILING" if h["failing"] else "ok"
            print(f"  {h['probe']:<20} {mark:<8} {h['state']:<8} since {h['since']:%Y-%m-%dT%H:%M:%SZ}"
                  f" {counted(h['failures'], 'failure'):>12}" + (f"  last error: {h['error']}" if h["error"] else ""))
        counters = await pool.fetchval("SELECT value FROM engine_state WHERE key = 'counters'")
        print("counters:", json.dumps(json.loads(counters) if counters else {}))
        print("flags:", await pool.fetchval("SELECT count(*) FROM flags"))
        print_calibration(await pool.fetchrow("SELECT * FROM calibration_model WHERE id = 1"),
                          config.detector.calibration)
        outbox = await outbox_summary(pool)
        print("verification outbox:", json.dumps(outbox, default=str))
        rows = await pool.fetch("SELECT probe, source, line, reason FROM quarantine "
                                "ORDER BY id DESC LIMIT $1", quarantine)
        print(f"quarantine (latest {len(rows)}):")
        for r in rows:
            print(f"  {r['probe']} {r['source']}:{r['line']}: {r['reason']}")
    return 0
