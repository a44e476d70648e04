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
