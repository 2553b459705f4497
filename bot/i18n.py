"""Every user-facing string, by language, from `bot/locales/{lang}*.toml`.

All files of one language are merged (`en.toml` + `en.admin.toml` + ...), nested tables flattened to dotted
keys (`[errors] busy = ...` -> `errors.busy`). Strings are Telegram HTML: callers escape the values they
interpolate when those come from users or providers (`html.escape`). A value that is a list holds plural
forms chosen by the `n` argument: English [one, other], Russian [one, few, many].
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from loguru import logger

LOCALES_DIR = Path(__file__).parent / "locales"
LANGUAGES: tuple[str, ...] = ("en", "ru")
DEFAULT_LANG = "en"

Entry = str | list[str]


def language_for(code: str | None) -> str:
    """The bot's language for a Telegram `language_code` (ru -> ru, anything else -> en)."""
    if code and code.lower().split("-")[0] in LANGUAGES:
        return code.lower().split("-")[0]
    return DEFAULT_LANG


def plural_index(n: int, lang: str) -> int:
    n = abs(n)
    if lang == "ru":
        if n % 10 == 1 and n % 100 != 11:
            return 0
        if 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14:
            return 1
        return 2
    return 0 if n == 1 else 1


def _flatten(table: Mapping[str, Any], prefix: str, out: dict[str, Entry], source: Path) -> None:
    for key, value in table.items():
        full = f"{prefix}{key}"
        if isinstance(value, Mapping):
            _flatten(value, full + ".", out, source)
        elif isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            if full in out:
                raise ValueError(f"{source.name}: key {full!r} is already defined by another file")
            out[full] = value
        else:
            raise ValueError(f"{source.name}: key {full!r} must be a string or a list of plural forms")


class Translator:
    def __init__(self, directory: Path = LOCALES_DIR, languages: tuple[str, ...] = LANGUAGES) -> None:
        self.languages = languages
        self.tables: dict[str, dict[str, Entry]] = {}
        for lang in languages:
            table: dict[str, Entry] = {}
            for path in sorted(directory.glob(f"{lang}.toml")) + sorted(directory.glob(f"{lang}.*.toml")):
                with path.open("rb") as fh:
                    _flatten(tomllib.load(fh), "", table, path)
            self.tables[lang] = table

    def keys(self, lang: str) -> set[str]:
        return set(self.tables.get(lang, {}))

    def entry(self, key: str, lang: str) -> Entry | None:
        found = self.tables.get(lang, {}).get(key)
        if found is None and lang != DEFAULT_LANG:
            found = self.tables.get(DEFAULT_LANG, {}).get(key)
        return found

    def get(self, key: str, lang: str = DEFAULT_LANG, /, **kw: Any) -> str:
        found = self.entry(key, lang)
        if found is None:
            logger.warning("missing translation {} ({})", key, lang)
            return key
        if isinstance(found, list):
            n = int(kw.get("n", 0))
            forms = found or [key]
            found = forms[min(plural_index(n, lang if self.tables.get(lang, {}).get(key) else DEFAULT_LANG),
                              len(forms) - 1)]
        try:
            return found.format(**kw) if kw else found
        except (KeyError, IndexError, ValueError):
            logger.warning("bad placeholders in translation {} ({})", key, lang)
            return found


@lru_cache(maxsize=1)
def default_translator() -> Translator:
    return Translator()


def t(key: str, lang: str = DEFAULT_LANG, /, **kw: Any) -> str:
    """The string `key` in `lang` (English when missing), formatted with `kw`."""
    return default_translator().get(key, lang, **kw)


class Translate:
    """`t` bound to one user's language; middlewares hand it to handlers as `t`."""

    __slots__ = ("lang", "translator")

    def __init__(self, lang: str, translator: Translator | None = None) -> None:
        self.lang = lang
        self.translator = translator or default_translator()

    def __call__(self, key: str, /, **kw: Any) -> str:
        return self.translator.get(key, self.lang, **kw)
