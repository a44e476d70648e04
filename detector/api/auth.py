"""Who may ask: bearer tokens (static, or issued by the client-credentials grant) and mutual-TLS
client certificates, each mapped to a client id, an officer or service identity and a role.

The credentials file (``[api] tokens_file``, TOML) holds only SHA-256 digests, never a token
or secret in clear::

    [[tokens]]                       # static bearer tokens
    sha256 = "<hex SHA-256 of the token>"
    client_id = "psb-gz-antifraud"
    identity = "Guangzhou PSB anti-fraud centre"
    role = "police"

    [[clients]]                      # OAuth2 client credentials (POST /oauth/token)
    client_id = "police-platform"
    secret_sha256 = "<hex SHA-256 of the client secret>"
    identity = "carrier-police platform"
    role = "police"

    [[certificates]]                 # mutual TLS: subject CN or certificate fingerprint
    fingerprint_sha256 = "<hex SHA-256 of the DER certificate>"   # or subject_cn = "..."
    client_id = "regulator-miit"
    identity = "MIIT monthly report"
    role = "regulator"
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import ssl
import time
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from detector.api.lookup import ROLES


@dataclass(frozen=True, slots=True)
class Identity:
    client_id: str
    identity: str
    role: str
    auth: str = "bearer"        # bearer, mtls


def sha256_hex(text: str | bytes) -> str:
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()


def _hex64(value: object) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


@dataclass(slots=True)
class Credentials:
    tokens: dict[str, Identity]
    clients: dict[str, tuple[str, Identity]]
    cert_fingerprints: dict[str, Identity]
    cert_cns: dict[str, Identity]

    @classmethod
    def empty(cls) -> "Credentials":
        return cls({}, {}, {}, {})

    @classmethod
    def load(cls, path: str | Path) -> "Credentials":
        """Read and check a credentials file; ``ValueError`` names the file and entry."""
        try:
            doc = tomllib.loads(Path(path).read_text())
        except OSError as e:
            raise ValueError(f"{path}: {e.strerror}") from e
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"{path}: {e}") from e
        out = cls.empty()
        unknown = set(doc) - {"tokens", "clients", "certificates"}
        if unknown:
            raise ValueError(f"{path}: unknown table {sorted(unknown)[0]!r}")

        def ident(entry: dict, where: str, auth: str) -> Identity:
            for key in ("client_id", "identity", "role"):
                if not isinstance(entry.get(key), str) or not entry[key]:
                    raise ValueError(f"{where}.{key}: must be a non-empty string")
            if entry["role"] not in ROLES:
                raise ValueError(f"{where}.role: must be one of {', '.join(ROLES)}")
            return Identity(entry["client_id"], entry["identity"], entry["role"], auth)

        for i, e in enumerate(doc.get("tokens", [])):
            where = f"{path}: tokens[{i}]"
            extra = set(e) - {"sha256", "client_id", "identity", "role"}
            if extra:
                raise ValueError(f"{where}.{sorted(extra)[0]}: unknown key")
            if not _hex64(e.get("sha256")):
                raise ValueError(f"{where}.sha256: must be 64 lower-case hex digits")
            out.tokens[e["sha256"]] = ident(e, where, "bearer")
        for i, e in enumerate(doc.get("clients", [])):
            where = f"{path}: clients[{i}]"
            extra = set(e) - {"secret_sha256", "client_id", "identity", "role"}
            if extra:
                raise ValueError(f"{where}.{sorted(extra)[0]}: unknown key")
            if not _hex64(e.get("secret_sha256")):
                raise ValueError(f"{where}.secret_sha256: must be 64 lower-case hex digits")
            who = ident(e, where, "bearer")
            if who.client_id in out.clients:
                raise ValueError(f"{where}.client_id: {who.client_id!r} appears twice")
            out.clients[who.client_id] = (e["secret_sha256"], who)
        for i, e in enumerate(doc.get("certificates", [])):
            where = f"{path}: certificates[{i}]"
            extra = set(e) - {"fingerprint_sha256", "subject_cn", "client_id", "identity", "role"}
            if extra:
                raise ValueError(f"{where}.{sorted(extra)[0]}: unknown key")
            who = ident(e, where, "mtls")
            if "fingerprint_sha256" in e:
                fp = str(e["fingerprint_sha256"]).replace(":", "").lower()
                if not _hex64(fp):
                    raise ValueError(f"{where}.fingerprint_sha256: must be 64 hex digits")
                out.cert_fingerprints[fp] = who
            elif isinstance(e.get("subject_cn"), str) and e["subject_cn"]:
                out.cert_cns[e["subject_cn"]] = who
            else:
                raise ValueError(f"{where}: needs fingerprint_sha256 or subject_cn")
        return out

    def by_certificate(self, der: bytes | None, peercert: dict | None) -> Identity | None:
        """The identity of a verified client certificate: by fingerprint, else by subject CN."""
        if der:
            who = self.cert_fingerprints.get(sha256_hex(der))
            if who:
                return who
        for rdn in (peercert or {}).get("subject", ()):
            for key, value in rdn:
                if key == "commonName" and value in self.cert_cns:
                    return self.cert_cns[value]
        return None

    def check_client(self, client_id: str, secret: str) -> Identity | None:
        entry = self.clients.get(client_id)
        given = sha256_hex(secret)
        if entry is None:
            hmac.compare_digest(given, "0" * 64)   # same work whether the client exists or not
            return None
        return entry[1] if hmac.compare_digest(given, entry[0]) else None


class Authenticator:
    """Resolves a request's credential to an :class:`Identity`."""

    def __init__(self, pool: asyncpg.Pool, credentials: Credentials, token_ttl_s: int) -> None:
        self.pool = pool
        self.credentials = credentials
        self.token_ttl_s = token_ttl_s
        self._issued: dict[str, tuple[Identity, float]] = {}   # token sha256 -> (who, expiry)

    async def issue(self, who: Identity) -> tuple[str, int]:
        """A new bearer token for ``who`` (client credentials); only its hash is stored."""
        token = secrets.token_urlsafe(32)
        h = sha256_hex(token)
        expires = datetime.now(UTC) + timedelta(seconds=self.token_ttl_s)
        await self.pool.execute(
            "INSERT INTO api_tokens (sha256, client_id, expires_at) VALUES ($1, $2, $3)",
            h, who.client_id, expires)
        self._issued[h] = (who, time.monotonic() + self.token_ttl_s)
        if len(self._issued) > 10000:
            now = time.monotonic()
            self._issued = {k: v for k, v in self._issued.items() if v[1] > now}
        return token, self.token_ttl_s

    async def by_token(self, token: str) -> Identity | None:
        h = sha256_hex(token)
        who = self.credentials.tokens.get(h)
        if who:
            return who
        cached = self._issued.get(h)
        if cached:
            if cached[1] > time.monotonic():
                return cached[0]
            self._issued.pop(h, None)
            return None
        # issued by another process serving the same store
        row = await self.pool.fetchrow(
            "SELECT client_id, extract(epoch FROM expires_at - now()) AS left_s FROM api_tokens "
            "WHERE sha256 = $1 AND expires_at > now()", h)
        if row is None:
            return None
        entry = self.credentials.clients.get(row["client_id"])
        if entry is None:     # the client was removed from the credentials file
            return None
        self._issued[h] = (entry[1], time.monotonic() + float(row["left_s"]))
        return entry[1]

    def by_certificate(self, ssl_object: ssl.SSLObject | None) -> Identity | None:
        if ssl_object is None:
            return None
        der = ssl_object.getpeercert(binary_form=True)
        if not der:
            return None
        return self.credentials.by_certificate(der, ssl_object.getpeercert())
