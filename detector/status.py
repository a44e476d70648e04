"""``goipwatch status``: what the daemon has taken in, refused and flagged (from the store)."""

from __future__ import annotations

import json

from detector.config import Config
from detector.store.db import session
from detector.verify import outbox_summary


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
                  f" {h['failures']:>4} failure(s)" + (f"  last error: {h['error']}" if h["error"] else ""))
        counters = await pool.fetchval("SELECT value FROM engine_state WHERE key = 'counters'")
        print("counters:", json.dumps(json.loads(counters) if counters else {}))
        print("flags:", await pool.fetchval("SELECT count(*) FROM flags"))
        outbox = await outbox_summary(pool)
        print("verification outbox:", json.dumps(outbox, default=str))
        rows = await pool.fetch("SELECT probe, source, line, reason FROM quarantine "
                                "ORDER BY id DESC LIMIT $1", quarantine)
        print(f"quarantine (latest {len(rows)}):")
        for r in rows:
            print(f"  {r['probe']} {r['source']}:{r['line']}: {r['reason']}")
    return 0
