"""Captions that Telegram accepts: cut by what Telegram counts, then escaped.

Telegram counts its limits (caption 1024, message 4096) in UTF-16 code units of the text after entity
parsing, so a cut by code points lets 600 emoji (1200 units) through to a refused send: a paid image
that is never delivered. Cutting the plain text before escaping means no `&amp;` or `<` is ever split,
and the text Telegram counts after parsing the escapes is exactly the cut text.
"""

from __future__ import annotations

from bot.services.textfmt import escape, u16len

CAPTION_LIMIT = 1024
ELLIPSIS = "\u2026"


def cut_u16(text: str, limit: int) -> str:
    """The longest prefix of `text` within `limit` UTF-16 code units, ending in an ellipsis when cut.

    A Python str steps by code point, so an emoji (a surrogate pair in UTF-16) is kept or dropped whole."""
    if u16len(text) <= limit:
        return text
    budget, kept = limit - u16len(ELLIPSIS), 0
    for index, char in enumerate(text):
        kept += 2 if ord(char) > 0xFFFF else 1
        if kept > budget:
            return text[:index] + ELLIPSIS
    return text  # unreachable: the whole text was over the limit


def caption_html(plain: str, limit: int = CAPTION_LIMIT) -> str:
    """Plain text as an HTML caption (parse_mode HTML) that fits within `limit`."""
    return escape(cut_u16(plain, limit))
