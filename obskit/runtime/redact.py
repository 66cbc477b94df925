"""Secrets never leave the process: which keys count as secret, and how values are replaced.

`redact_query` rewrites a URL query string (server spans' `url.query`, client spans'
`url.full`). Log fields are redacted by obskit.runtime.logs with the same key words.
"""

from __future__ import annotations

from typing import Final

from obskit.runtime.config import DEFAULT_REDACT_KEYS

REDACTED: Final = "REDACTED"
SEMCONV_SECRET_KEYS: Final = frozenset({"AWSAccessKeyId", "Signature", "sig", "X-Goog-Signature"})
"""Query keys whose values OTel semconv says to redact in url.query / url.full."""


def redact_query(query: str, words: tuple[str, ...] = DEFAULT_REDACT_KEYS) -> str:
    """`query` with the values of semconv's signature keys and of keys containing one of
    `words` (case-insensitive, '-' read as '_') replaced by REDACTED."""
    if "=" not in query:
        return query
    pairs = [p.partition("=") for p in query.split("&")]
    if not any(sep and _secret(key, words) for key, sep, _ in pairs):
        return query
    return "&".join(
        f"{k}{sep}{REDACTED if sep and _secret(k, words) else v}" for k, sep, v in pairs
    )


def _secret(key: str, words: tuple[str, ...]) -> bool:
    if key in SEMCONV_SECRET_KEYS:
        return True
    norm = key.lower().replace("-", "_")
    return any(word in norm for word in words)
