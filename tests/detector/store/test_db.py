import asyncio

import asyncpg

from detector.store import db


async def test_migrations_apply_once_even_when_started_together(pg_dsn):
    conns = [await asyncpg.connect(pg_dsn) for _ in range(3)]
    try:
        applied = await asyncio.gather(*(db.migrate(c) for c in conns))
        names = [n for a in applied for n in a]
        assert sorted(names) == sorted(name for _, name, _ in db.migrations())
        assert await db.migrate(conns[0]) == []
        tables = {r[0] for r in await conns[0].fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        assert {"ingested_files", "quarantine", "sim_state", "imei_state", "feature_snapshots",
                "flags", "flag_history", "registrations", "engine_state", "cells"} <= tables
    finally:
        for c in conns:
            await c.close()


def test_redact_hides_passwords():
    assert db.redact("postgresql://gw:s3cret@db:5432/gw") == "postgresql://gw:***@db:5432/gw"
    assert "s3cret" not in db.redact("host=db password=s3cret dbname=gw")


async def test_connect_error_names_the_store_without_password():
    import pytest
    with pytest.raises(db.StoreError, match=r"gw:\*\*\*@127.0.0.1:1/"):
        await db.connect("postgresql://gw:s3cret@127.0.0.1:1/x")
