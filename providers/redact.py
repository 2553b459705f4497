"""Secrets out of text that is logged or stored: an error body or URL a provider echoes back can carry
its API key, an aiohttp error the bot token (it sits in every Bot API URL)."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import quote

MASK = "***"
# Masking a shorter string would mangle ordinary words, and no real key or token is that short.
MIN_SECRET_LENGTH = 8


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """`text` with every secret (as is, or percent-encoded as in a URL) replaced by `MASK`."""
    forms = {form for secret in secrets if secret and len(secret) >= MIN_SECRET_LENGTH
             for form in (secret, quote(secret, safe=""))}
    # Longest first: a secret that contains another must not be left half masked.
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, MASK)
    return text
