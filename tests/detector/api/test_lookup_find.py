"""lookup.find reads a SIM in one statement: the same devices and cells as the checkpointed
state decoded in Python (sim_histories), for cell ids of every byte width."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from detector.api import lookup
from detector.features import state as st
from tests.detector.api.conftest import IMEI_A, IMSI

HOUR = int(datetime(2026, 10, 5, 8, tzinfo=UTC).timestamp()) // 3600
CELLS = {256: "460-00-4101-256", 70_000: "460-00-4101-70000", 16_777_217: "460-00-4101-16777217",
         2_000_000_000: "460-00-4101-2000000000"}


async def _sim_with_cells(pool, imsi: int, cells: list[int]) -> None:
    s = st.empty_sim_state(1)
    s["last_hour"], s["last_ts"] = HOUR, HOUR * 3600
    for back, cell in enumerate(cells):
        s["slot"]["top_cell"][0, (HOUR - back) % st.SLOTS] = cell
    await pool.execute("INSERT INTO sim_state (imsi, state) VALUES ($1, $2)", imsi, s.tobytes())


@pytest.fixture
async def store(pool):             # seeded (conftest), plus a SIM whose cells need 2-4 bytes
    await pool.executemany("INSERT INTO cells (id, name) VALUES ($1, $2)", list(CELLS.items()))
    await _sim_with_cells(pool, 460_001_234_500_000, [256, -1, 70_000, 16_777_217, 2_000_000_000])
    return pool


async def test_cells_of_every_width_are_named_as_the_state_decoded_in_python(store):
    imsi = 460_001_234_500_000
    async with store.acquire() as conn:
        found = await lookup.find(conn, "imsi", str(imsi), 50)
        _, history = await lookup.sim_histories(conn, [imsi])
    [sub] = found.subscribers
    assert [c["cell_id"] for c in sub["cells"]] == [CELLS[256], CELLS[70_000], CELLS[16_777_217],
                                                     CELLS[2_000_000_000]]
    assert [(c["cell_id"], c["hour"]) for c in sub["cells"]] == \
        [(name, lookup.iso(h * 3600)) for h, name in history[imsi][1]]
    assert sub["registration"] is None and sub["flags"] == []


async def test_the_seeded_sim_reads_as_sim_histories_decodes_it(store):
    async with store.acquire() as conn:
        found = await lookup.find(conn, "imsi", IMSI, 50)
        states, history = await lookup.sim_histories(conn, [int(IMSI)])
    [sub] = found.subscribers
    devices, cells = history[int(IMSI)]
    assert sub["devices"] == devices
    assert sub["cells"] == [{"cell_id": c, "hour": lookup.iso(h * 3600)} for h, c in cells]
    assert sub["state_as_of"] == lookup.iso(states[int(IMSI)]["updated_at"])


async def test_a_state_of_another_layout_is_not_read(store):
    await store.execute("UPDATE engine_state SET value = $1::jsonb WHERE key = 'layout'",
                        json.dumps("a layout of another version"))
    async with store.acquire() as conn:
        found = await lookup.find(conn, "imsi", IMSI, 50)
        assert await lookup.find(conn, "imsi", "460001234500000", 50) == lookup.Found([])
    [sub] = found.subscribers           # registered and flagged: answered without its state
    assert sub["devices"] == [] and sub["cells"] == [] and sub["state_as_of"] is None


async def test_more_sims_than_the_limit_are_truncated_in_imsi_order(store):
    async with store.acquire() as conn:
        found = await lookup.find(conn, "imei", IMEI_A, 1)     # the rig of IMSI and another
    assert found.truncated and [s["imsi"] for s in found.subscribers] == [IMSI]


async def test_prepare_plans_every_lookup_statement_and_finds_nobody(store):
    async with store.acquire() as conn:
        before = await conn.fetchval("SELECT count(*) FROM pg_prepared_statements")
        await lookup.prepare(conn)
        planned = await conn.fetchval("SELECT count(*) FROM pg_prepared_statements")
        # each number type's statement now cached; a lookup afterwards reuses it
        assert planned - before >= len(lookup.NUMBER_TYPES)
        found = await lookup.find(conn, "imsi", str(IMSI), 50)
        assert await conn.fetchval("SELECT count(*) FROM pg_prepared_statements") == planned
    assert [s["imsi"] for s in found.subscribers] == [str(IMSI)]
