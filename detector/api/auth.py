"""Who may ask: bearer tokens (static, or issued by the client-credentials grant) and mutual-TLS
client certificates, each mapped to a client id, an officer or service identity and a role.

The file is read again when it changes (:mod:`detector.api.credentials`); every request
resolves its identity against the credentials read last, so a removed entry stops working at
once, tokens issued to a removed client included.

The credentials file (``[api] tokens_file``, TOML) holds only SHA-256 digests, never a token
or secret in clear::

    [[tokens]]                       # static bearer tokens
    sha256 = "<hex SHA-256 of the token>"
    client_id = "psb-gz-antifraud"
    identity = "Guangzhou PSB anti-fraud centre"
    role = "police"
    officers = ["044123", "044187"]  # the officers who may state lookups with it
    rate_per_s = 1200.0              # optional: this client's own request rate and burst,
    burst = 2400                     #   in place of [api] rate_per_s and burst

    [[clients]]                      # OAuth2 client credentials (POST /oauth/token)
    client_id = "police-platform"
    secret_sha256 = "<hex SHA-256 of the client secret>"
    identity = "carrier-police platform"
    role = "police"
    officers = ["044123"]

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
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from detector.api.lookup import ROLES


@dataclass(frozen=True, slots=True)
class Identity:
    client_id: str
    identity: str
    role: str
    auth: str = "bearer"        # bearer, mtls, session
    officers: tuple[str, ...] = ()   # registered officers who may state lookups with it
    subject: str = ""           # the subject CN of the client certificate (mutual TLS)
    # the client's own token bucket (requests per second, at most ``burst`` saved up), in
    # place of the API's default: a police platform sending a province's lookups needs a
    # thousand a second, a regulator fetching the monthly report a few a minute
    rate_per_s: float | None = None
    burst: int | None = None


def sha256_hex(text: str | bytes) -> str:
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()


_RATE_KEYS = frozenset({"rate_per_s", "burst"})


def _hex64(value: object) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def _officers(value: object, where: str) -> tuple[str, ...]:
    """A credential's ``officers``: registered ids (badge numbers, staff ids), 1-64 printable
    characters each."""
    if value is None:
        return ()
    if not isinstance(value, list) or not all(
            isinstance(v, str) and 0 < len(v.strip()) <= 64 and v.isprintable() for v in value):
        raise ValueError(f"{where}.officers: must be a list of officer ids (1-64 printable characters)")
    return tuple(v.strip() for v in value)


def _rate(entry: dict, where: str) -> tuple[float | None, int | None]:
    """A credential's own ``rate_per_s`` and ``burst`` (both or neither)."""
    rate, burst = entry.get("rate_per_s"), entry.get("burst")
    if rate is None and burst is None:
        return None, None
    if rate is None or burst is None:
        raise ValueError(f"{where}: rate_per_s and burst go together")
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate <= 1e6:
        raise ValueError(f"{where}.rate_per_s: must be a number of requests per second, "
                         "above 0 and at most 1000000")
    if isinstance(burst, bool) or not isinstance(burst, int) or not 1 <= burst <= 10_000_000:
        raise ValueError(f"{where}.burst: must be a whole number from 1 to 10000000")
    return float(rate), burst


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
            text = Path(path).read_text()
        except OSError as e:
            raise ValueError(f"{path}: {e.strerror}") from e
        except UnicodeDecodeError as e:
            raise ValueError(f"{path}: not UTF-8 ({e.reason})") from e
        return cls.parse(text, path)

    @classmethod
    def parse(cls, text: str, path: str | Path = "credentials") -> "Credentials":
        """Check the text of a credentials file; ``ValueError`` names ``path`` and the entry."""
        try:
            doc = tomllib.loads(text)
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
            rate, burst = _rate(entry, where)
            return Identity(entry["client_id"], entry["identity"], entry["role"], auth,
                            _officers(entry.get("officers"), where), rate_per_s=rate,
                            burst=burst)

        for i, e in enumerate(doc.get("tokens", [])):
            where = f"{path}: tokens[{i}]"
            extra = set(e) - {"sha256", "client_id", "identity", "role", "officers"} - _RATE_KEYS
            if extra:
                raise ValueError(f"{where}.{sorted(extra)[0]}: unknown key")
            if not _hex64(e.get("sha256")):
                raise ValueError(f"{where}.sha256: must be 64 lower-case hex digits")
            out.tokens[e["sha256"]] = ident(e, where, "bearer")
        for i, e in enumerate(doc.get("clients", [])):
            where = f"{path}: clients[{i}]"
            extra = (set(e) - {"secret_sha256", "client_id", "identity", "role", "officers"}
                     - _RATE_KEYS)
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
            extra = set(e) - {"fingerprint_sha256", "subject_cn", "client_id", "identity", "role",
                             "officers"} - _RATE_KEYS
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
        """The identity of a verified client certificate: by fingerprint, else by subject CN;
        with the certificate's subject CN (the officer of a personal certificate)."""
        cns = [value for rdn in (peercert or {}).get("subject", ()) for key, value in rdn
               if key == "commonName"]
        who = self.cert_fingerprints.get(sha256_hex(der)) if der else None
        if who is None:
            who = next((self.cert_cns[cn] for cn in cns if cn in self.cert_cns), None)
        if who is None:
            return None
        return replace(who, subject=cns[0] if cns else "")

    def client(self, client_id: str) -> Identity | None:
        """The identity of a client of the client-credentials grant, if it is listed."""
        entry = self.clients.get(client_id)
        return entry[1] if entry else None

    def check_client(self, client_id: str, secret: str) -> Identity | None:
        entry = self.clients.get(client_id)
        given = sha256_hex(secret)
        if entry is None:
            hmac.compare_digest(given, "0" * 64)   # same work whether the client exists or not
            return None
        return entry[1] if hmac.compare_digest(given, entry[0]) else None


class Authenticator:
    """Resolves a request's credential to an :class:`Identity`, against the credentials read
    last (``source.current``): a token issued to a client is honoured only while that client
    is listed, with the client's identity and role as listed now."""

    def __init__(self, pool: asyncpg.Pool, source: "CredentialSourceLike", token_ttl_s: int) -> None:
        self.pool = pool
        self.source = source
        self.token_ttl_s = token_ttl_s
        self._issued: dict[str, tuple[str, float]] = {}   # token sha256 -> (client id, expiry)

    @property
    def credentials(self) -> Credentials:
        return self.source.current

    def new_token(self, who: Identity) -> tuple[str, str, datetime]:
        """(token, its SHA-256, expiry) for ``who``; :meth:`store` keeps it."""
        token = secrets.token_urlsafe(32)
        return token, sha256_hex(token), datetime.now(UTC) + timedelta(seconds=self.token_ttl_s)

    async def store(self, conn: asyncpg.Connection, who: Identity, h: str, expires: datetime) -> None:
        """Store an issued token's hash (in the caller's transaction, with its audit row)."""
        await conn.execute(
            "INSERT INTO api_tokens (sha256, client_id, expires_at) VALUES ($1, $2, $3)",
            h, who.client_id, expires)

    def remember(self, who: Identity, h: str) -> None:
        """Cache a token whose row committed (saves the store a query per request)."""
        self._issued[h] = (who.client_id, time.monotonic() + self.token_ttl_s)
        if len(self._issued) > 10000:
            now = time.monotonic()
            self._issued = {k: v for k, v in self._issued.items() if v[1] > now}

    async def issue(self, who: Identity) -> tuple[str, int]:
        """A new bearer token for ``who`` (client credentials); only its hash is stored."""
        token, h, expires = self.new_token(who)
        async with self.pool.acquire() as conn:
            await self.store(conn, who, h, expires)
        self.remember(who, h)
        return token, self.token_ttl_s

    def forget_clients(self, client_ids: set[str]) -> None:
        """Drop the cached tokens of ``client_ids`` (revoked)."""
        self._issued = {k: v for k, v in self._issued.items() if v[0] not in client_ids}

    async def by_token(self, token: str) -> Identity | None:
        h = sha256_hex(token)
        credentials = self.credentials
        who = credentials.tokens.get(h)
        if who:
            return who
        cached = self._issued.get(h)
        if cached:
            if cached[1] > time.monotonic():
                return credentials.client(cached[0])    # None once the client is removed
            self._issued.pop(h, None)
            return None
        # issued by another process serving the same store
        row = await self.pool.fetchrow(
            "SELECT client_id, extract(epoch FROM expires_at - now()) AS left_s FROM api_tokens "
            "WHERE sha256 = $1 AND expires_at > now()", h)
        if row is None:
            return None
        who = credentials.client(row["client_id"])
        if who is None:     # the client was removed from the credentials file
            return None
        self._issued[h] = (who.client_id, time.monotonic() + float(row["left_s"]))
        return who

    def by_certificate(self, ssl_object: ssl.SSLObject | None) -> Identity | None:
        if ssl_object is None:
            return None
        der = ssl_object.getpeercert(binary_form=True)
        if not der:
            return None
        return self.credentials.by_certificate(der, ssl_object.getpeercert())


class CredentialSourceLike:
    """What :class:`Authenticator` reads: the credentials in force (``current``)."""
    current: Credentials


class Fixed(CredentialSourceLike):
    """Credentials that never change (given to ``make_app`` directly, or none)."""

    def __init__(self, credentials: Credentials) -> None:
        self.current = credentials
