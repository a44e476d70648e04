"""Policy, configuration and signatures: no store, no network."""

from __future__ import annotations

import random

import pytest

from detector.flags import Rig
from detector.verify import ActionPolicy, SenderConfig, backoff, decide, sign, verify_signature
from detector.verify.signing import signature_problem

from .conftest import SECRET, flag


def rig(n: int, **evidence: str) -> Rig:
    return Rig("rig-0011223344", {str(460_001_000_000_000 + i) for i in range(n)}, {"35000000000001"},
               {"460-0-1-1"}, 1, 2, dict(evidence))


@pytest.mark.parametrize("f, r, action, lead", [
    (flag(1, "bulk_registration"), None, "reverify", False),
    (flag(1, "bulk_registration"), rig(12, devices="12 SIMs rotate over 3 shared devices"), "reverify", True),
    (flag(1), None, "reverify", False),                                   # lone SIM anomaly
    (flag(1, "rig_member"), rig(2), "reverify", False),                   # small rig
    (flag(1, "rig"), rig(3), "suspend", False),                           # co-location
    (flag(1, "rig_member"), rig(5), "suspend", False),                    # shared device
    (flag(1), rig(5), "reverify", False),                                 # no physical evidence
    (flag(1), rig(5, cell="5 machine-like SIMs active together in cell 460-0-1-1"), "suspend", False),
    (flag(1, "rig"), rig(10), "suspend", True),                           # large rig: police lead
])
def test_policy_chooses_the_action(f, r, action, lead):
    d = decide(f, r, ActionPolicy(suspend_min_sims=3, police_lead_min_sims=10))
    assert (d.action, d.police_lead) == (action, lead)
    assert d.why


def test_policy_knobs_are_checked():
    with pytest.raises(ValueError, match="police_lead_min_sims"):
        ActionPolicy(police_lead_min_sims=1)
    with pytest.raises(ValueError, match="suppress_s"):
        ActionPolicy(suppress_s=-1)


def test_signature_round_trip_and_refusals():
    body = b'{"request_id":"x","action":"reverify"}'
    sig = sign(SECRET, 1_800_000_000, body)
    assert sig.startswith("sha256=") and len(sig) == 7 + 64
    assert verify_signature(SECRET, "1800000000", body, sig, now=1_800_000_010, max_skew_s=300)
    assert not verify_signature(SECRET, "1800000000", body + b" ", sig, 1_800_000_010, 300)  # tampered
    assert not verify_signature(b"another-secret-0123456789", "1800000000", body, sig,
                                1_800_000_010, 300)                                         # wrong secret
    assert not verify_signature(SECRET, "1800000001", body, sig, 1_800_000_010, 300)        # other time
    assert signature_problem(SECRET, "1800000000", body, sig, 1_800_000_301, 300) == \
        "stale or future timestamp"                                                         # replay
    assert signature_problem(SECRET, "1800000000", body, sig, 1_799_999_000, 300) == \
        "stale or future timestamp"
    assert signature_problem(SECRET, None, body, sig, 1_800_000_000, 300)
    assert signature_problem(SECRET, "18e8", body, sig, 1_800_000_000, 300) == "malformed timestamp"
    assert signature_problem(SECRET, "1800000000", body, "md5=" + sig[7:], 1_800_000_000, 300)
    assert verify_signature(SECRET.decode(), "1800000000", body, sig, 1_800_000_000, 300)  # str secret


def test_backoff_is_full_jitter_under_the_cap():
    rng = random.Random(1)
    for attempt in range(1, 30):
        top = min(10.0, 0.5 * 2 ** (attempt - 1))
        xs = [backoff(attempt, 0.5, 10.0, rng) for _ in range(200)]
        assert all(0 <= x <= top for x in xs)
        assert max(xs) > 0.8 * top and min(xs) < 0.2 * top  # spread over the whole range


GOOD = {"url": "https://platform.example/v1/requests", "secret_file": "/run/credentials/gw/verify"}


def test_config_from_toml():
    cfg = SenderConfig.from_toml({**GOOD, "timeout_s": 5, "max_attempts": 8, "concurrency": 2,
                                  "police_lead_min_sims": 20, "suppress_s": 3600}, "gw.toml [verification]")
    assert cfg.timeout_s == 5 and cfg.max_attempts == 8 and cfg.concurrency == 2
    assert cfg.policy == ActionPolicy(suspend_min_sims=3, police_lead_min_sims=20, suppress_s=3600)
    assert SenderConfig.from_toml(GOOD).backoff_cap_s == 60.0


@pytest.mark.parametrize("table, key", [
    ({"secret_file": "/x"}, "url"),
    ({**GOOD, "url": "ftp://platform.example/"}, "url"),
    ({**GOOD, "url": "https://user:pw@platform.example/"}, "url"),
    ({"url": GOOD["url"]}, "secret_file or secret_env"),
    ({**GOOD, "secret_env": "GW_SECRET"}, "secret_file or secret_env"),
    ({**GOOD, "secret": "hunter2hunter2hunter2"}, "secret"),
    ({**GOOD, "timeout": 3}, "'timeout'"),
    ({**GOOD, "timeout_s": True}, "timeout_s"),
    ({**GOOD, "timeout_s": "3"}, "timeout_s"),
    ({**GOOD, "max_attempts": 2.5}, "max_attempts"),
    ({**GOOD, "max_attempts": 0}, "max_attempts"),
    ({**GOOD, "backoff_base_s": -1}, "backoff_base_s"),
    ({**GOOD, "backoff_base_s": 10, "backoff_cap_s": 5}, "backoff_cap_s"),
    ({**GOOD, "concurrency": 0}, "concurrency"),
    ({**GOOD, "poll_s": 0}, "poll_s"),
    ({**GOOD, "suppress_s": -5}, "suppress_s"),
    ({**GOOD, "police_lead_min_sims": 1}, "police_lead_min_sims"),
])
def test_config_errors_name_the_key(table, key):
    with pytest.raises(ValueError) as e:
        SenderConfig.from_toml(table, "gw.toml [verification]")
    assert key in str(e.value) and "gw.toml [verification]" in str(e.value)
    assert "hunter2" not in str(e.value)


def test_secret_from_file_or_environment(tmp_path, monkeypatch):
    path = tmp_path / "secret"
    path.write_text("a-file-secret-0123456789\n")
    assert SenderConfig(url=GOOD["url"], secret_file=str(path)).load_secret() == b"a-file-secret-0123456789"
    monkeypatch.setenv("GW_S", "an-env-secret-0123456789")
    assert SenderConfig(url=GOOD["url"], secret_env="GW_S").load_secret() == b"an-env-secret-0123456789"
    with pytest.raises(ValueError, match="secret_file .*missing"):
        SenderConfig(url=GOOD["url"], secret_file=str(tmp_path / "missing")).load_secret()
    with pytest.raises(ValueError, match="secret_env GW_NONE"):
        SenderConfig(url=GOOD["url"], secret_env="GW_NONE").load_secret()
    monkeypatch.setenv("GW_S", "short")
    with pytest.raises(ValueError, match="at least 16 bytes") as e:
        SenderConfig(url=GOOD["url"], secret_env="GW_S").load_secret()
    assert "short" not in str(e.value).replace("at least", "")
