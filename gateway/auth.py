"""API keys for the gateway: the key file, authentication, scopes, per-key rate limits.

Plain Python (no gRPC server code; :mod:`gateway.auth_interceptor` enforces it on the server).

**Keys.** A key reads ``vk_<key id>_<secret>``; the secret is ``secrets.token_urlsafe(32)``
(256 random bits). The id is public (it names the key in logs and in the file); the secret is
shown once, when the key is created, and stored nowhere.

**The key file** (YAML; the same file mounted from a Kubernetes Secret)::

    keys:
      - id: shop-frontend
        sha256: 3f0c...e1        # hex SHA-256 of the whole key string, never the key itself
        scopes: [search]
        rate_per_s: 50           # optional token bucket (0: no limit; absent: the default)
        burst: 100               # optional bucket size (absent: the default)
        description: the shop's search box   # optional
        created: "2025-01-01T12:00:00Z"       # optional

Why a plain SHA-256 and not bcrypt/scrypt/argon2: those slow hashes protect *low-entropy*
secrets (passwords) from brute force. A key with 256 random bits cannot be brute-forced through
any hash, so the standard practice for API tokens is a fast hash compared in constant time
(:func:`hmac.compare_digest`); a slow hash would only add milliseconds to every request.

**Scopes.** ``search`` (Search, Describe), ``write`` (UpsertProducts, IngestProducts,
DeleteProducts), ``admin`` (administrative RPCs; none yet, and any gateway RPC without an
explicit scope). ``admin`` implies ``write`` and ``search``; ``write`` does **not** imply
``search``: a catalog-sync job that only pushes products gets a key that cannot read the
catalog through the search API (least privilege) — list both for a key that needs both.

**Reload.** :meth:`KeyStore.maybe_reload` looks at the file at most once per
``check_interval_s`` (1 s) and re-reads it when its mtime, size or inode changed, so keys are
added and revoked without a restart (Kubernetes rewrites a mounted Secret in place). A file that
fails to parse, or is missing for a moment, keeps the keys last loaded (logged as an error):
a half-written file must not lock everybody out or let anybody in.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime
import hashlib
import hmac
import logging
import math
import os
import re
import secrets
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vitrine.serving.config import ConfigError
from vitrine.serving.errors import PermissionDenied, ResourceExhausted, Unauthenticated

log = logging.getLogger("vitrine.auth")

SEARCH, WRITE, ADMIN = "search", "write", "admin"
SCOPES = (SEARCH, WRITE, ADMIN)
_IMPLIES = {ADMIN: frozenset(SCOPES), WRITE: frozenset({WRITE}), SEARCH: frozenset({SEARCH})}
KEY_PREFIX = "vk_"
# No "_" in ids: the first "_" after the prefix ends the id (the secret may contain "_").
KEY_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,63}$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_FIELDS = {"id", "sha256", "scopes", "rate_per_s", "burst", "description", "created"}
ANONYMOUS = "anonymous"


def hash_key(key: str) -> str:
    """The hex SHA-256 of a whole key string (what the key file stores)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key(key_id: str) -> str:
    """A fresh key ``vk_<key_id>_<secret>``."""
    _check_id(key_id, f"id {key_id!r}")
    return f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"


def key_id_of(key: str) -> str | None:
    """The id part of a well-formed key, else None."""
    if not key.startswith(KEY_PREFIX):
        return None
    key_id, sep, secret = key[len(KEY_PREFIX) :].partition("_")
    if not sep or not secret or not KEY_ID_RE.match(key_id):
        return None
    return key_id


def expand_scopes(scopes: Iterable[str]) -> frozenset[str]:
    """The scopes granted, implications included (``admin`` → all three)."""
    return frozenset().union(*(_IMPLIES[s] for s in scopes))


# --- token bucket -------------------------------------------------------------------------------


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved; one request takes one token.

    :meth:`take` returns 0.0 when a token was taken, else the seconds until one will be there
    (nothing is taken then: a refused request costs nothing). Monotonic clock; thread-safe.
    """

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic):
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = float(rate)
        self.burst = int(burst)
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock()
        self._lock = threading.Lock()

    def take(self, n: float = 1.0) -> float:
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            if self._tokens >= n:
                self._tokens -= n
                return 0.0
            return (n - self._tokens) / self.rate


# --- the key file -------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyEntry:
    """One key as the file holds it (its hash, never the key)."""

    id: str
    sha256: str
    scopes: tuple[str, ...]
    rate_per_s: float | None = None  # None: the store's default
    burst: int | None = None
    description: str = ""
    created: str = ""

    def to_yaml(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "sha256": self.sha256, "scopes": list(self.scopes)}
        if self.rate_per_s is not None:
            out["rate_per_s"] = self.rate_per_s
        if self.burst is not None:
            out["burst"] = self.burst
        if self.description:
            out["description"] = self.description
        if self.created:
            out["created"] = self.created
        return out


@dataclass(frozen=True)
class Principal:
    """Who is calling: an authenticated key (or :data:`ANONYMOUS` when auth is off)."""

    key_id: str
    scopes: frozenset[str] = field(default_factory=frozenset)  # implications expanded

    def allows(self, scope: str) -> bool:
        return scope in self.scopes


def _check_id(key_id: Any, where: str) -> None:
    if not isinstance(key_id, str) or not KEY_ID_RE.match(key_id):
        raise ConfigError(
            f"{where}: id must be 1-64 letters, digits, '-' or '.' (no '_'), got {key_id!r}"
        )


def _entry(raw: Any, where: str) -> KeyEntry:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(raw).__name__}")
    _check_id(raw.get("id"), where)
    where = f"{where} (id {raw['id']!r})"
    if "key" in raw or "secret" in raw:
        raise ConfigError(f"{where}: holds a plaintext key; store only its sha256")
    unknown = sorted(set(raw) - _FIELDS)
    if unknown:
        raise ConfigError(f"{where}: unknown fields {unknown} (known: {sorted(_FIELDS)})")
    digest = raw.get("sha256")
    if not isinstance(digest, str) or not _SHA256_RE.match(digest):
        raise ConfigError(f"{where}: sha256 must be 64 lowercase hex digits")
    scopes = raw.get("scopes")
    if isinstance(scopes, str):
        scopes = [s.strip() for s in scopes.split(",") if s.strip()]
    if not isinstance(scopes, list) or not scopes:
        raise ConfigError(f"{where}: scopes must be a non-empty list of {list(SCOPES)}")
    bad = [s for s in scopes if s not in SCOPES]
    if bad:
        raise ConfigError(f"{where}: scopes: unknown {bad} (known: {list(SCOPES)})")
    rate, burst = raw.get("rate_per_s"), raw.get("burst")
    if rate is not None and (
        isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate < math.inf
    ):
        raise ConfigError(f"{where}: rate_per_s must be a number >= 0 (0: no limit)")
    if burst is not None and (isinstance(burst, bool) or not isinstance(burst, int) or burst < 1):
        raise ConfigError(f"{where}: burst must be an integer >= 1")
    return KeyEntry(
        id=raw["id"],
        sha256=digest,
        scopes=tuple(dict.fromkeys(scopes)),
        rate_per_s=None if rate is None else float(rate),
        burst=burst,
        description=str(raw.get("description") or ""),
        created=str(raw.get("created") or ""),
    )


def parse_keys(text: str, source: str = "key file") -> list[KeyEntry]:
    """Validate a key file's text; :class:`ConfigError` names the file and the entry."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from exc
    if data is None:
        return []
    if not isinstance(data, dict) or set(data) - {"keys"}:
        raise ConfigError(f"{source}: expected a mapping with one field, 'keys' (a list)")
    raw = data.get("keys") or []
    if not isinstance(raw, list):
        raise ConfigError(f"{source}: 'keys' must be a list")
    entries, seen = [], set()
    for i, item in enumerate(raw):
        e = _entry(item, f"{source}: keys[{i}]")
        if e.id in seen:
            raise ConfigError(f"{source}: keys[{i}]: duplicate id {e.id!r}")
        seen.add(e.id)
        entries.append(e)
    return entries


def read_keys(path: str | Path) -> list[KeyEntry]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"api keys file {path}: {exc.strerror or exc}") from exc
    return parse_keys(text, str(path))


def write_keys(path: str | Path, entries: Iterable[KeyEntry]) -> None:
    """Write the key file atomically (a temp file in the same folder, then rename), mode 0600."""
    path = Path(path)
    body = yaml.safe_dump(
        {"keys": [e.to_yaml() for e in entries]}, sort_keys=False, default_flow_style=None
    )
    text = "# Vitrine gateway API keys: SHA-256 hashes only (see docs/gateway.md).\n" + body
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def create_key(
    path: str | Path,
    key_id: str,
    scopes: Iterable[str],
    rate_per_s: float | None = None,
    burst: int | None = None,
    description: str = "",
) -> str:
    """Add a new key to the file (created if missing) and return the key: shown once, not kept."""
    path = Path(path)
    entries = read_keys(path) if path.exists() else []
    if any(e.id == key_id for e in entries):
        raise ConfigError(f"{path}: a key with id {key_id!r} exists (revoke it first)")
    key = new_key(key_id)
    created = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    raw = {"id": key_id, "sha256": hash_key(key), "scopes": list(scopes), "created": created}
    if rate_per_s is not None:
        raw["rate_per_s"] = rate_per_s
    if burst is not None:
        raw["burst"] = burst
    if description:
        raw["description"] = description
    entry = _entry(raw, f"{path}: new key")
    write_keys(path, [*entries, entry])
    return key


def revoke_key(path: str | Path, key_id: str) -> None:
    """Remove a key from the file; a gateway reading it refuses the key within a second or so."""
    entries = read_keys(path)
    kept = [e for e in entries if e.id != key_id]
    if len(kept) == len(entries):
        raise ConfigError(f"{path}: no key with id {key_id!r}")
    write_keys(path, kept)


# --- the store the gateway checks calls against -------------------------------------------------


class KeyStore:
    """The loaded keys, their buckets, and the file they came from (reloaded when it changes)."""

    def __init__(
        self,
        entries: Iterable[KeyEntry] = (),
        *,
        path: str | Path | None = None,
        default_rate_per_s: float = 0.0,
        default_burst: int = 0,
        check_interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.path = Path(path) if path else None
        self.default_rate_per_s = default_rate_per_s
        self.default_burst = default_burst
        self.check_interval_s = check_interval_s
        self._clock = clock
        self._entries: dict[str, KeyEntry] = {}
        self._buckets: dict[str, TokenBucket] = {}
        self._stamp: tuple[int, int, int] | None = None
        self._checked = clock()
        self._lock = threading.Lock()
        self._set(list(entries))

    @classmethod
    def load(
        cls,
        path: str | Path,
        default_rate_per_s: float = 0.0,
        default_burst: int = 0,
        check_interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> KeyStore:
        """Read and validate ``path`` (:class:`ConfigError` on a missing file or a bad entry)."""
        stamp = _stamp(Path(path))
        store = cls(
            read_keys(path),
            path=path,
            default_rate_per_s=default_rate_per_s,
            default_burst=default_burst,
            check_interval_s=check_interval_s,
            clock=clock,
        )
        store._stamp = stamp
        return store

    @property
    def key_ids(self) -> list[str]:
        return sorted(self._entries)

    def _limits(self, e: KeyEntry) -> tuple[float, int]:
        rate = self.default_rate_per_s if e.rate_per_s is None else e.rate_per_s
        burst = e.burst or self.default_burst or max(1, math.ceil(rate))
        return rate, burst

    def _set(self, entries: list[KeyEntry]) -> None:
        buckets = {}
        for e in entries:
            rate, burst = self._limits(e)
            if rate <= 0:
                continue
            old = self._buckets.get(e.id)  # a reload keeps a key's bucket (and its debt)
            keep = old is not None and (old.rate, old.burst) == (rate, burst)
            buckets[e.id] = old if keep else TokenBucket(rate, burst, self._clock)
        self._entries = {e.id: e for e in entries}
        self._buckets = buckets

    def maybe_reload(self) -> bool:
        """Re-read the file if it changed (looked at once per ``check_interval_s`` at most)."""
        if self.path is None:
            return False
        now = self._clock()
        with self._lock:
            if now - self._checked < self.check_interval_s:
                return False
            self._checked = now
            try:
                stamp = _stamp(self.path)
                if stamp == self._stamp:
                    return False
                entries = read_keys(self.path)
            except ConfigError as exc:
                log.error("api keys file not reloaded, keeping the keys loaded: %s", exc)
                return False
            self._stamp = stamp
            self._set(entries)
        log.info("api keys reloaded", extra={"path": str(self.path), "keys": len(entries)})
        return True

    def authenticate(self, key: str | None) -> Principal:
        """The key's principal; :class:`Unauthenticated` when missing, malformed, unknown or
        wrong (one message for all: a caller learns nothing about which ids exist)."""
        self.maybe_reload()
        if not key:
            raise Unauthenticated(
                "missing API key: send metadata 'authorization: Bearer <key>' (or 'x-api-key')"
            )
        key_id = key_id_of(key)
        entry = self._entries.get(key_id) if key_id else None
        digest = hash_key(key)
        expected = entry.sha256 if entry else "0" * 64
        if not hmac.compare_digest(digest, expected) or entry is None:
            raise Unauthenticated("invalid API key")
        return Principal(entry.id, expand_scopes(entry.scopes))

    @staticmethod
    def authorize(principal: Principal, scope: str) -> None:
        """:class:`PermissionDenied` unless the principal holds ``scope``."""
        if not principal.allows(scope):
            raise PermissionDenied(
                f"API key {principal.key_id!r} lacks scope {scope!r} "
                f"(has {sorted(principal.scopes)})"
            )

    def limit(self, principal: Principal) -> None:
        """Take a token from the key's bucket; :class:`ResourceExhausted` with the wait if empty."""
        bucket = self._buckets.get(principal.key_id)
        if bucket is None:
            return
        wait = bucket.take()
        if wait > 0:
            raise ResourceExhausted(
                f"rate limit of API key {principal.key_id!r} ({bucket.rate:g}/s, burst "
                f"{bucket.burst}) exceeded: retry in {wait:.3f} s",
                retry_after_s=wait,
            )


def _stamp(path: Path) -> tuple[int, int, int]:
    try:
        st = path.stat()  # follows the symlinks of a Kubernetes Secret volume
    except OSError as exc:
        raise ConfigError(f"api keys file {path}: {exc.strerror or exc}") from exc
    return (st.st_mtime_ns, st.st_size, st.st_ino)


# --- who is calling (set by the interceptor around each gated handler) ---------------------------

# Set by gateway.auth_interceptor around each gated handler; read with current_principal().
PRINCIPAL: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "vitrine_principal", default=None
)


def current_principal() -> Principal | None:
    """The caller of the RPC being handled (None outside one, or where auth does not apply)."""
    return PRINCIPAL.get()
