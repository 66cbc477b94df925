"""Secrets never leave the process: which keys count as secret, and how values are replaced.

One matching rule wherever redaction applies (log fields at any depth, `url.query` on server
spans, `url.full` on client spans): a key is secret when, percent-decoded the way applications
decode query strings (`%5F` is `_`, `+` a space), lower-cased and with every `-` and `_`
removed, it contains one of the configured words normalized the same way. With the word
`api_key`, the keys `apikey`, `apiKey`, `API-KEY`, `x_api_key` and `api%5Fkey` all match; with
`token`, `%74oken` does. In URLs the values of semconv's signature keys (`AWSAccessKeyId`,
`Signature`, `sig`, `X-Goog-Signature`, compared exactly after decoding) are secret too.

Log fields become `[REDACTED]` (obskit.runtime.logs), URL query values `REDACTED`.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import unquote_plus

from obskit.runtime.config import DEFAULT_REDACT_KEYS

REDACTED: Final = "REDACTED"
SEMCONV_SECRET_KEYS: Final = frozenset({"AWSAccessKeyId", "Signature", "sig", "X-Goog-Signature"})
"""Query keys whose values OTel semconv says to redact in url.query / url.full."""
_CACHE_LIMIT: Final = 4096
_CACHED_KEY_MAX: Final = 256
"""Longer keys are decided every time, never cached (bounds the caches' memory)."""


def normalize(key: str) -> str:
    """The form keys and words are compared in: lower case, without `-` and `_`."""
    return key.lower().replace("-", "").replace("_", "")


def decode_key(key: str) -> str:
    """A key as the application reads it from a query string (`api%5Fkey` -> `api_key`)."""
    if "%" in key or "+" in key:
        return unquote_plus(key, errors="replace")
    return key


class Redactor:
    """The secret-key rule (module doc) for one list of words, with bounded answer caches."""

    __slots__ = ("_fields", "_queries", "words")

    def __init__(self, words: tuple[str, ...] = DEFAULT_REDACT_KEYS) -> None:
        self.words: tuple[str, ...] = tuple(
            dict.fromkeys(n for n in (normalize(w) for w in words) if n)
        )
        self._fields: dict[str, bool] = {}
        self._queries: dict[str, bool] = {}

    def _matches(self, decoded: str) -> bool:
        norm = normalize(decoded)
        return any(word in norm for word in self.words)

    def is_secret(self, key: str) -> bool:
        """Whether a log field (or a key inside one) named `key` holds a secret."""
        known = self._fields.get(key)
        if known is None:
            known = self._matches(decode_key(key))
            _remember(self._fields, key, known)
        return known

    def is_secret_query_key(self, key: str) -> bool:
        """Whether the value of query key `key` (as written in the URL) is a secret."""
        known = self._queries.get(key)
        if known is None:
            decoded = decode_key(key)
            known = decoded in SEMCONV_SECRET_KEYS or self._matches(decoded)
            _remember(self._queries, key, known)
        return known

    def query(self, query: str) -> str:
        """`query` with the values of secret keys replaced by REDACTED (the same object when
        nothing is secret, which the request path relies on to skip work)."""
        if "=" not in query:
            return query
        secret = self.is_secret_query_key
        pairs = [p.partition("=") for p in query.split("&")]
        if not any(sep and secret(key) for key, sep, _ in pairs):
            return query
        return "&".join(f"{k}{sep}{REDACTED if sep and secret(k) else v}" for k, sep, v in pairs)


def _remember(cache: dict[str, bool], key: str, answer: bool) -> None:
    if len(key) <= _CACHED_KEY_MAX:
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        cache[key] = answer


_redactors: dict[tuple[str, ...], Redactor] = {}


def redactor(words: tuple[str, ...] = DEFAULT_REDACT_KEYS) -> Redactor:
    """The shared Redactor for `words` (one per configured list)."""
    found = _redactors.get(words)
    if found is None:
        if len(_redactors) >= 16:
            _redactors.clear()
        found = _redactors[words] = Redactor(words)
    return found


def redact_query(query: str, words: tuple[str, ...] = DEFAULT_REDACT_KEYS) -> str:
    """`query` with the values of secret keys (module doc) replaced by REDACTED."""
    return redactor(words).query(query)
