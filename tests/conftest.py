"""Shared fixtures: a fresh database on the real PostgreSQL server for each test that asks.

The server is GOIPWATCH_TEST_PG (default postgresql://postgres@127.0.0.1:5432/postgres);
.ci/run starts one when none answers. Tests marked ``captures`` or ``tshark`` need inputs the
repository does not hold (``tests/inputs.py``).
"""

from __future__ import annotations

import os
import uuid

import asyncpg
import pytest

from tests.inputs import missing

ADMIN_DSN = os.environ.get("GOIPWATCH_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "captures: needs the shared public captures (GOIPWATCH_CAPTURES)")
    config.addinivalue_line("markers", "tshark: needs TShark on the PATH")


def pytest_runtest_setup(item) -> None:
    """A test whose input is missing is skipped with the reason, or fails under CI."""
    for marker in ("captures", "tshark"):
        if item.get_closest_marker(marker) is None:
            continue
        why = missing(marker)
        if why is None:
            continue
        if os.environ.get("CI"):
            pytest.fail(f"{why}; CI must have it", pytrace=False)
        pytest.skip(why)


def _dsn_for(db: str) -> str:
    base, _, _ = ADMIN_DSN.rpartition("/")
    return f"{base}/{db}"


@pytest.fixture
async def pg_dsn():
    name = f"gw_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield _dsn_for(name)
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(scope="session")
def small_world(tmp_path_factory):
    """A small simulated world (shared by the tests of one session; do not modify)."""
    from detector.world.simulate import WorldParams, simulate_world

    out = tmp_path_factory.mktemp("world")
    simulate_world(WorldParams(subscribers=1500, days=2, seed=11), out)
    return out


@pytest.fixture(scope="session")
def zero_world(small_world, tmp_path_factory):
    """:func:`small_world` with every IMSI moved to the test PLMN 001-01 (MSIN kept) and every
    IMEI to a TAC beginning with 01 (Luhn digit recomputed), without the registrations'
    carrier column: identifiers whose numbers lose their leading zeros. Same behaviour, so
    it raises the same flags (do not modify)."""
    import csv

    from detector.ids import luhn_check_digit

    def imei(v: str) -> str:
        return v and "01" + v[2:14] + str(luhn_check_digit("01" + v[2:14]))

    out = tmp_path_factory.mktemp("zero_world")
    for name, drop in (("cdr.csv", ()), ("subscribers.csv", ("carrier",)), ("labels.csv", ())):
        with (small_world / name).open(newline="") as src, (out / name).open("w", newline="") as dst:
            reader = csv.DictReader(src)
            fields = [f for f in reader.fieldnames if f not in drop]
            writer = csv.DictWriter(dst, fields, lineterminator="\n", extrasaction="ignore")
            writer.writeheader()
            for row in reader:
                row["imsi"] = to_test_plmn(row["imsi"])
                if "imei" in row:
                    row["imei"] = imei(row["imei"])
                writer.writerow(row)
    return out


def to_test_plmn(imsi: str) -> str:
    """An IMSI of :func:`small_world` as :func:`zero_world` has it."""
    return "00101" + imsi[-10:]


@pytest.fixture(scope="session")
def small_model(small_world, tmp_path_factory):
    """A model trained on the first day of :func:`small_world`."""
    from detector import batch, model

    loaded = batch.load_files([small_world / "cdr.csv"], [small_world / "subscribers.csv"])
    start = int(loaded.cdr.ts.min()) // 86400 * 86400
    trained = batch.train_on(loaded, start=start, end=start + 86400)
    path, _ = model.save(trained, tmp_path_factory.mktemp("model") / "m.skops")
    return path
