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


async def test_rigs_written_with_unpadded_identifiers_get_their_15_digits(pg_dsn):
    """Rows from before identifiers kept their width: a rig of test-PLMN SIMs (001-01) on a
    device of a TAC beginning with 0, written as the numbers' digits."""
    conn = await asyncpg.connect(pg_dsn)
    try:
        await db.migrate(conn)
        await conn.execute(
            "INSERT INTO rigs (id, sims, members, devices, cells, first_at, last_at, evidence) "
            "VALUES ('rig-old', 2, '[\"1010000000002\", \"460001234567890\"]', '[\"12345678901238\"]', "
            "'[]', now(), now(), '2 SIMs'), ('rig-new', 1, '[\"460001234567891\"]', '[]', '[]', now(), "
            "now(), '')")
        await conn.execute("DELETE FROM schema_migrations WHERE version = 12")
        await db.migrate(conn)
        rows = {r["id"]: (r["members"], r["devices"]) for r in await conn.fetch(
            "SELECT id, members, devices FROM rigs")}
    finally:
        await conn.close()
    assert rows["rig-old"] == ('["001010000000002", "460001234567890"]', '["012345678901238"]')
    assert rows["rig-new"] == ('["460001234567891"]', '[]')


async def test_a_pool_without_session_reset_still_rolls_back_a_transaction_left_open(pg_dsn):
    pool = await db.connect(pg_dsn, 2, reset_session=False)
    try:
        async with pool.acquire() as conn:
            pid = await conn.fetchval("SELECT pg_backend_pid()")
            await conn.execute("SET application_name = 'kept'")
            await conn.execute("BEGIN")
            await conn.execute("CREATE TEMP TABLE left_open (x int)")
        async with pool.acquire() as conn:       # the same connection (one idle)
            assert await conn.fetchval("SELECT pg_backend_pid()") == pid
            # the transaction went back rolled back; the session itself was left as it was
            assert not conn.is_in_transaction()
            assert await conn.fetchval("SELECT to_regclass('pg_temp.left_open')") is None
            assert await conn.fetchval("SHOW application_name") == "kept"
    finally:
        await pool.close()
    default = await db.connect(pg_dsn, 2)
    try:
        async with default.acquire() as conn:
            await conn.execute("SET application_name = 'kept'")
        async with default.acquire() as conn:
            assert await conn.fetchval("SHOW application_name") != "kept"
    finally:
        await default.close()


async def test_a_prepared_pool_opens_every_connection_migrated_and_prepares_each(pg_dsn):
    seen = []

    async def prepare(conn):
        # the schema is in place before the first connection is prepared
        seen.append((await conn.fetchval("SELECT pg_backend_pid()"),
                     await conn.fetchval("SELECT count(*) FROM audit_log")))

    pool = await db.connect(pg_dsn, 3, prepare=prepare)
    try:
        assert pool.get_size() == 3 and len(seen) == 3
        assert len({pid for pid, _ in seen}) == 3 and all(n == 0 for _, n in seen)
        # a connection the pool opens later (after a loss, say) is prepared in its turn
        await pool.expire_connections()
        async with pool.acquire() as conn:
            await conn.fetchval("SELECT 1")
        assert len(seen) == 4 and seen[3][0] not in {pid for pid, _ in seen[:3]}
    finally:
        await pool.close()


async def test_a_pool_is_opened_without_prepare_as_before(pg_dsn):
    pool = await db.connect(pg_dsn, 3)
    try:
        assert pool.get_size() == 1      # grows with use
    finally:
        await pool.close()
