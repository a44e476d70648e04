"""The random mix: a profile and mix drawn from the seed, reproducible, and wide across seeds."""

from __future__ import annotations

import json

import numpy as np
import pytest

from detector.world.profile import DEFAULT_PROFILE, RANGES, random_draw
from detector.world.scenarios import FRAUD_ORDER, GATEWAY, SCENARIOS
from detector.world.simulate import MIX_PRESETS, WorldParams, resolve_mix, simulate_world

DEFAULT = MIX_PRESETS["default"]


def within(value: float, key: str) -> bool:
    lo, hi = RANGES[key]
    return lo - 1e-9 <= value <= hi + 1e-9


def test_the_same_seed_draws_the_same_world_description():
    a, b = random_draw(7, DEFAULT), random_draw(7, DEFAULT)
    assert a.mix == b.mix and a.record == b.record and a.profile == b.profile
    assert random_draw(8, DEFAULT).record != a.record


def test_every_drawn_value_is_inside_its_range():
    for seed in range(30):
        d = random_draw(seed, DEFAULT)
        people = d.record["people"]
        assert within(people["call_rate"], "people_call_rate")
        assert within(people["inbound_rate"], "inbound_rate")
        assert within(people["heavy_share"], "heavy_share")
        # a heavy caller's overall factor (world rate x boost) is 8x to 40x today's
        lo, hi = d.profile.heavy_factor
        assert people["call_rate"] * lo == pytest.approx(8.0, rel=1e-3)
        assert people["call_rate"] * hi == pytest.approx(40.0, rel=1e-3)
        assert within(d.record["fraud_share"], "fraud_share")
        fraud = sum(d.mix[k] for k in FRAUD_ORDER)
        assert fraud / (1 + fraud) == pytest.approx(d.record["fraud_share"], rel=1e-2)
        g = d.profile.gateway
        assert within(g.gap_s[0], "gap_s") and g.gap_s[0] < g.gap_s[1]
        assert within(g.answer[0], "answer") and g.answer[1] <= RANGES["answer"][1] * 1.05
        assert 0 <= g.hours[0] <= 12 and g.hours[0] < g.hours[1] <= 24
        assert within(d.profile.relocate_share, "relocate_share")
        for name, sc in d.profile.scenarios.items():
            assert min(sc.sizes) >= 2 and max(sc.sizes) <= 2 * max(SCENARIOS[name].sizes) + 1
        seg = d.profile.scenarios["mobile_rig"].extra["segment_s"]
        assert RANGES["mobile_segment_s"][0] <= seg[0] < seg[1] <= RANGES["mobile_segment_s"][1] * 1.05
        for key in ("call_centre", "courier", "iot_meter"):
            assert 0.3 * DEFAULT[key] - 1e-6 <= d.mix[key] <= 5 * DEFAULT[key] + 1e-6


def test_draws_vary_across_seeds_over_most_of_each_range():
    draws = [random_draw(seed, DEFAULT) for seed in range(40)]
    fraud = np.array([d.record["fraud_share"] for d in draws])
    people = np.array([d.record["people"]["call_rate"] for d in draws])
    gaps = np.array([d.profile.gateway.gap_s[0] for d in draws])
    rotation = np.array([d.profile.scenarios["goip_rotating"].extra["rotation_s"][0] for d in draws])
    assert fraud.min() < 0.003 and fraud.max() > 0.03          # of 0.1 % .. 10 %
    assert people.min() < 0.8 and people.max() > 2.5            # of 0.5x .. 4x
    assert gaps.max() / gaps.min() > 5
    assert rotation.max() / rotation.min() > 5
    assert len({d.profile.scenarios["goip_evasive"].extra["cells"] for d in draws}) == 3
    assert len({d.profile.scenarios["goip_fixed"].sizes for d in draws}) > 10


def test_random_needs_a_seed_and_presets_stay_as_they_were():
    with pytest.raises(ValueError, match="seed"):
        resolve_mix("random")
    assert resolve_mix("random", 3) == random_draw(3, DEFAULT).mix
    assert resolve_mix("random,courier=0.05", 3)["courier"] == 0.05
    assert DEFAULT_PROFILE.gateway == GATEWAY and DEFAULT_PROFILE.heavy_share == 0


def test_a_random_world_records_its_draw_and_is_reproducible(tmp_path):
    p = WorldParams(subscribers=400, days=1, seed=4, mix="random")
    simulate_world(p, tmp_path / "a")
    simulate_world(p, tmp_path / "b")
    for f in ("cdr.csv", "labels.csv", "subscribers.csv", "world.json"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
    meta = json.loads((tmp_path / "a" / "world.json").read_text())
    assert meta["draw"] == random_draw(4, DEFAULT).record and meta["params"]["mix"] == "random"
    assert meta["mix"] == random_draw(4, DEFAULT).mix
    simulate_world(WorldParams(subscribers=400, days=1, seed=5, mix="random"), tmp_path / "c")
    assert (tmp_path / "c" / "cdr.csv").read_bytes() != (tmp_path / "a" / "cdr.csv").read_bytes()
    preset = WorldParams(subscribers=400, days=1, seed=4)
    simulate_world(preset, tmp_path / "d")
    assert "draw" not in json.loads((tmp_path / "d" / "world.json").read_text())


def test_people_call_more_when_the_draw_says_so(tmp_path):
    """Two seeds whose people's call rates differ by far: the ordinary subscribers' MO voice
    per SIM follows (same size, same day)."""
    draws = {s: random_draw(s, DEFAULT).record["people"]["call_rate"] for s in range(40)}
    lo, hi = min(draws, key=draws.get), max(draws, key=draws.get)
    per_sim = {}
    for seed in (lo, hi):
        d = tmp_path / str(seed)
        simulate_world(WorldParams(subscribers=600, days=1, seed=seed, mix="random"), d)
        labels = dict(line.split(",")[:3:2] for line in (d / "labels.csv").read_text().splitlines()[1:])
        ordinary = {k for k, v in labels.items() if v == "ordinary"}
        mo = dict.fromkeys(ordinary, 0)
        for line in (d / "cdr.csv").read_text().splitlines()[1:]:
            if line.startswith("voice,MO,") and line.split(",")[4] in ordinary:
                mo[line.split(",")[4]] += 1
        # the heavy callers (up to 5 %, 8x to 40x in every world) left out: the top 10 %
        counts = np.sort(np.array(list(mo.values())))
        per_sim[seed] = counts[: int(0.9 * len(counts))].mean()
    assert per_sim[hi] / per_sim[lo] > 0.5 * draws[hi] / draws[lo]


def test_a_relocating_box_moves_every_period_and_a_staying_one_never():
    import dataclasses
    from types import SimpleNamespace

    from detector.world.core import Ctx
    from detector.world.scenarios import Rig, _relocated

    ctx = Ctx(seed=1, start=0, end=2 * 86400)
    rig = Rig("goip-fixed-1", "goip_fixed", np.arange(4), start=0, used=np.ones(4, bool))
    t = np.arange(0, 2 * 86400, 600)
    cell = np.full(len(t), 100)
    moving = dataclasses.replace(DEFAULT_PROFILE, relocate_share=1.0, relocate_s=(3600, 3600))
    world = SimpleNamespace(ctx=ctx, profile=moving, cells=SimpleNamespace(n=5000))
    moved = _relocated(world, rig, t, cell)
    hours = t // 3600
    # one cell per hour, a new one each hour
    assert all(len(set(moved[hours == h])) == 1 for h in np.unique(hours))
    assert len(set(moved)) == len(np.unique(hours))
    world.profile = DEFAULT_PROFILE
    assert np.array_equal(_relocated(world, rig, t, cell), cell)
