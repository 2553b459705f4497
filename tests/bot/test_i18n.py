"""Every string exists in every language with the same placeholders; plurals and fallbacks work."""

from __future__ import annotations

import string
from html.parser import HTMLParser
from pathlib import Path

import pytest

from bot.i18n import LANGUAGES, LOCALES_DIR, Translate, Translator, language_for, plural_index, t


def placeholders(entry: str | list[str]) -> set[str]:
    forms = entry if isinstance(entry, list) else [entry]
    return {name for form in forms for _, name, _, _ in string.Formatter().parse(form) if name}


@pytest.fixture(scope="module")
def translator() -> Translator:
    return Translator()


def test_every_key_exists_in_every_language(translator: Translator) -> None:
    english = translator.keys("en")
    assert len(english) > 50
    for lang in LANGUAGES:
        assert translator.keys(lang) == english, f"{lang}: {translator.keys(lang) ^ english}"


def test_placeholders_match_across_languages(translator: Translator) -> None:
    for key in translator.keys("en"):
        want = placeholders(translator.tables["en"][key])
        for lang in LANGUAGES:
            assert placeholders(translator.tables[lang][key]) == want, (lang, key)


def test_plural_entries_have_the_forms_of_their_language(translator: Translator) -> None:
    for lang, forms in (("en", 2), ("ru", 3)):
        for key, entry in translator.tables[lang].items():
            if isinstance(entry, list):
                assert len(entry) == forms, (lang, key)


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.bad: list[str] = []

    def handle_starttag(self, tag: str, attrs: object) -> None:
        if tag not in {"b", "i", "code", "pre", "a", "s", "u", "blockquote"}:
            self.bad.append(tag)
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            self.bad.append("/" + tag)


def test_every_string_is_valid_telegram_html(translator: Translator) -> None:
    for lang in LANGUAGES:
        for key, entry in translator.tables[lang].items():
            for form in entry if isinstance(entry, list) else [entry]:
                checker = _Tags()
                checker.feed(form)
                assert not checker.bad and not checker.stack, (lang, key, checker.bad, checker.stack)
                # a bare < or & that is not a tag or entity would make Telegram reject the message
                assert "&" not in form.replace("&lt;", "").replace("&gt;", "").replace("&amp;", ""), (lang, key)


@pytest.mark.parametrize(("n", "en", "ru"), [(1, 0, 0), (2, 1, 1), (5, 1, 2), (11, 1, 2), (21, 1, 0),
                                             (22, 1, 1), (112, 1, 2), (0, 1, 2)])
def test_plural_rules(n: int, en: int, ru: int) -> None:
    assert plural_index(n, "en") == en
    assert plural_index(n, "ru") == ru


def test_formatting_plurals_and_language_choice() -> None:
    assert t("time.in_minutes", "en", n=1) == "in 1 minute"
    assert t("time.in_minutes", "ru", n=3) == "через 3 минуты"
    assert t("time.in_minutes", "ru", n=5) == "через 5 минут"
    assert Translate("ru")("cancel.nothing") == "Сейчас ничего не выполняется."
    assert language_for("ru") == "ru" and language_for("ru-RU") == "ru"
    assert language_for("de") == "en" and language_for(None) == "en"


def test_all_files_of_a_language_are_merged_and_clashes_refused(tmp_path: Path) -> None:
    (tmp_path / "en.toml").write_text('[a]\nx = "one"\n', encoding="utf-8")
    (tmp_path / "en.admin.toml").write_text('[b]\ny = "two {v}"\n', encoding="utf-8")
    (tmp_path / "ru.toml").write_text('[a]\nx = "один"\n', encoding="utf-8")
    merged = Translator(tmp_path)
    assert merged.get("b.y", "en", v=2) == "two 2"
    assert merged.get("b.y", "ru", v=3) == "two 3"  # missing in ru: English, not the key
    assert merged.get("nope", "en") == "nope"
    (tmp_path / "en.more.toml").write_text('[a]\nx = "again"\n', encoding="utf-8")
    with pytest.raises(ValueError, match="already defined"):
        Translator(tmp_path)


def test_locales_dir_holds_the_shipped_files() -> None:
    assert (LOCALES_DIR / "en.toml").is_file() and (LOCALES_DIR / "ru.toml").is_file()
