"""ApiConfig.from_toml, the credentials file and the token bucket."""

from __future__ import annotations

import pytest

from detector.api import ApiConfig, Credentials
from detector.api.ratelimit import RateLimiter


def test_defaults_and_values():
    assert ApiConfig.from_toml({}, "api") == ApiConfig()
    c = ApiConfig.from_toml({"host": "0.0.0.0", "port": 9443, "rate_per_s": 2, "burst": 5,
                             "tokens_file": "/etc/goipwatch/api-credentials.toml",
                             "enabled": True}, "api")
    assert (c.port, c.rate_per_s, c.burst, c.enabled) == (9443, 2.0, 5, True)


@pytest.mark.parametrize("table, key", [
    ({"prot": 1}, "prot"),
    ({"port": "8443"}, "port"),
    ({"port": 70000}, "port"),
    ({"port": True}, "port"),
    ({"rate_per_s": 0}, "rate_per_s"),
    ({"burst": 0}, "burst"),
    ({"tls_cert": "a.crt"}, "tls_key"),
    ({"tls_key": "a.key"}, "tls_cert"),
    ({"client_ca": "ca.crt"}, "client_ca"),
    ({"require_client_cert": "yes"}, "require_client_cert"),
    ({"enabled": True}, "tokens_file"),
    ({"token_ttl_s": 5}, "token_ttl_s"),
    ({"host": ""}, "host"),
    ({"console": "yes"}, "console"),
    ({"console_session_ttl_s": 60}, "console_session_ttl_s"),
    ({"lookup_fold_interval_s": -1}, "lookup_fold_interval_s"),
    ({"lookup_fold_interval_s": 7200}, "lookup_fold_interval_s"),
])
def test_bad_values_name_the_key(table, key):
    with pytest.raises(ValueError, match=rf"^config\.toml \[api\]\.{key}:"):
        ApiConfig.from_toml(table, "config.toml [api]")


def test_credentials_file_is_checked(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('[[tokens]]\nsha256 = "abc"\nclient_id = "x"\nidentity = "y"\nrole = "police"\n')
    with pytest.raises(ValueError, match=r"tokens\[0\]\.sha256"):
        Credentials.load(p)
    p.write_text(f'[[tokens]]\nsha256 = "{"a" * 64}"\nclient_id = "x"\nidentity = "y"\nrole = "judge"\n')
    with pytest.raises(ValueError, match=r"tokens\[0\]\.role"):
        Credentials.load(p)
    p.write_text('[[certificates]]\nclient_id = "x"\nidentity = "y"\nrole = "admin"\n')
    with pytest.raises(ValueError, match="fingerprint_sha256 or subject_cn"):
        Credentials.load(p)
    with pytest.raises(ValueError, match="No such file"):
        Credentials.load(tmp_path / "missing.toml")


def test_token_bucket():
    now = [0.0]
    lim = RateLimiter(rate=2.0, burst=3, clock=lambda: now[0])
    assert [lim.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert lim.take("a") == pytest.approx(0.5)
    assert lim.take("b") == 0.0
    now[0] = 0.5
    assert lim.take("a") == 0.0 and lim.take("a") > 0
    assert RateLimiter.retry_after(0.01) == "1" and RateLimiter.retry_after(1.2) == "2"


def test_a_key_with_its_own_rate_fills_and_refills_its_own_bucket():
    now = [0.0]
    lim = RateLimiter(rate=2.0, burst=3, clock=lambda: now[0])
    assert [lim.take("platform", 1000.0, 2000) for _ in range(2000)] == [0.0] * 2000
    assert lim.take("platform", 1000.0, 2000) == pytest.approx(0.001)
    assert lim.take("regulator", 0.1, 1) == 0.0
    assert lim.take("regulator", 0.1, 1) == pytest.approx(10.0)
    assert lim.peek("regulator", 0.1, 1) == pytest.approx(10.0)
    now[0] = 5.0
    assert lim.take("platform", 1000.0, 2000) == 0.0 and lim.peek("regulator", 0.1, 1) > 0


def test_forgetting_keeps_the_buckets_still_refilling_at_their_own_rate():
    now = [0.0]
    lim = RateLimiter(rate=100.0, burst=1, max_keys=2, clock=lambda: now[0])
    assert lim.take("slow", 0.01, 1) == 0.0            # empty for 100 s
    assert lim.take("fast") == 0.0                     # full again after 0.01 s
    now[0] = 1.0
    assert lim.take("new") == 0.0                      # over max_keys: refilled ones go
    assert lim.take("slow", 0.01, 1) == pytest.approx(99.0)     # not forgotten, still empty


def _credential(extra: str) -> str:
    return (f'[[tokens]]\nsha256 = "{"a" * 64}"\nclient_id = "p"\nidentity = "q"\n'
            f'role = "police"\n{extra}')


def test_a_credential_may_carry_its_own_rate():
    c = Credentials.parse(_credential("rate_per_s = 1200\nburst = 2400\n"))
    who = c.tokens["a" * 64]
    assert (who.rate_per_s, who.burst) == (1200.0, 2400)
    assert Credentials.parse(_credential("")).tokens["a" * 64].rate_per_s is None


@pytest.mark.parametrize("extra, message", [
    ("rate_per_s = 10\n", "rate_per_s and burst go together"),
    ("burst = 10\n", "rate_per_s and burst go together"),
    ("rate_per_s = 0\nburst = 10\n", r"tokens\[0\]\.rate_per_s: must be"),
    ("rate_per_s = true\nburst = 10\n", r"tokens\[0\]\.rate_per_s: must be"),
    ("rate_per_s = 10\nburst = 0.5\n", r"tokens\[0\]\.burst: must be"),
    ("rate_per_s = 10\nburst = \"many\"\n", r"tokens\[0\]\.burst: must be"),
])
def test_a_bad_rate_of_a_credential_names_the_entry(extra, message):
    with pytest.raises(ValueError, match=message):
        Credentials.parse(_credential(extra), "creds.toml")
