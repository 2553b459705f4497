"""The providers file: the shipped default, every validation error, environment overrides."""

from __future__ import annotations

import textwrap
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from providers.config import usd_to_micros
from providers.kinds import KINDS
from providers.loader import ProvidersFileError, load_providers, resolve_path
from providers.types import Category

MINIMAL = """
[providers.openai]
kind = "openai"
models = { text = "gpt-4o-mini" }
prices = { text_in_per_1k = 0.00015, text_out_per_1k = 0.0006 }
"""


def write(tmp_path: Path, text: str, name: str = "providers.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_default_file_defines_every_provider_route_and_label() -> None:
    config = load_providers(env={})
    assert config.source.endswith("default_providers.toml")
    assert set(KINDS) <= {p.kind for p in config.providers.values()}
    for category in Category:
        route = config.routes[category].providers
        assert route, category
        assert all(config.providers[name].model_for(category) for name in route)
        assert config.default_label(category) is not None, category
    assert config.labels["Fast chat"].credits == 1 and config.labels["Smart chat"].credits == 5
    assert [name for name, label in config.labels.items() if label.vision] == ["Smart chat"]
    assert config.routes[Category.TRANSCRIPTION].providers == ("groq", "openai")
    assert config.providers["groq"].prices.transcription_per_minute == Decimal("667")
    assert config.routes[Category.IMAGE].strategy == "cheapest"
    assert config.settings.cache_ttl_s == {Category.AUDIO: 3600.0}
    # No key in an empty environment: everything listed, everything disabled, each saying which variable.
    assert set(config.disabled_providers()) == set(config.providers)
    assert "OPENAI_API_KEY" in config.disabled_providers()["openai"]
    assert "REPLICATE_API_TOKEN" in config.disabled_providers()["replicate"]


def test_default_file_prices_label_models_on_their_own() -> None:
    config = load_providers(env={"ANTHROPIC_API_KEY": "k"})
    anthropic = config.providers["anthropic"]
    smart_model = config.labels["Smart chat"].models["anthropic"]
    assert anthropic.prices_for(smart_model).text_out_per_1k == 15_000
    assert anthropic.prices_for(anthropic.models[Category.TEXT]).text_out_per_1k == 5_000


BAD_FILES = [
    ("[providers.openai]\nkind = 'openai'\nmodles = { text = 'x' }\n", "[providers.openai]", "unknown key 'modles'"),
    ("[providers.x]\nkind = 'openaai'\n", "[providers.x]", "unknown kind 'openaai'"),
    ("[providers.x]\nmodels = {}\n", "[providers.x]", "'kind' must be a non-empty string"),
    (MINIMAL + "[routes]\ntext = ['openai', 'ghost']\n", "[routes] text", "'ghost', which is not defined"),
    (MINIMAL + "[routes]\ntext = { providers = ['openai'], strategy = 'random' }\n", "[routes] text",
     "unknown strategy 'random'"),
    (MINIMAL + "[routes]\ntext = { providers = ['openai'], order = 1 }\n", "[routes] text", "unknown key 'order'"),
    (MINIMAL + "[routes]\nimage = ['openai']\n", "[routes] image", "'openai' has no model for image"),
    (MINIMAL + "[routes]\nspeech = ['openai']\n", "[routes]", "unknown category 'speech'"),
    (MINIMAL + "[labels.Chat]\ncredits = 1\n", "[labels.Chat]", "missing 'category'"),
    (MINIMAL + "[labels.Chat]\ncategory = 'chat'\ncredits = 1\n", "[labels.Chat]", "unknown category 'chat'"),
    (MINIMAL + "[labels.Chat]\ncategory = 'text'\ncredits = -1\n", "[labels.Chat]", "'credits' must be"),
    (MINIMAL + "[labels.Chat]\ncategory = 'text'\ncredits = 1\ncolour = 'red'\n", "[labels.Chat]",
     "unknown key 'colour'"),
    (MINIMAL + "[labels.Chat]\ncategory = 'text'\ncredits = 1\nroute = ['nobody']\n", "[labels.Chat]",
     "'nobody', which is not defined"),
    (MINIMAL + "[labels.'Big one']\ncategory = 'image'\ncredits = 1\nroute = ['openai']\n", "[labels.'Big one']",
     "has no model for image"),
    ("[providers.openai]\nkind = 'openai'\nprices = { image = -0.01 }\n", "[providers.openai] prices",
     "'image' must not be negative"),
    ("[providers.openai]\nkind = 'openai'\nprices = { per_token = 1 }\n", "[providers.openai] prices",
     "unknown key 'per_token'"),
    ("[providers.openai]\nkind = 'openai'\ndaily_budget_usd = -5\n", "[providers.openai]",
     "'daily_budget_usd' must not be negative"),
    ("[providers.a]\nkind = 'anthropic'\nmodels = { image = 'claude' }\n", "[providers.a] models",
     "kind 'anthropic' cannot serve image"),
    ("[providers.e]\nkind = 'elevenlabs'\nmodels = { video = 'v' }\n", "[providers.e] models",
     "kind 'elevenlabs' cannot serve video"),
    ("[providers.openai]\nkind = 'openai'\napi_key = 'sk-123'\n", "[providers.openai]",
     "'api_key' does not belong in the file"),
    ("[providers.openai]\nkind = 'openai'\ntimeout_s = 0\n", "[providers.openai]", "'timeout_s' must be greater"),
    ("[providers.openai]\nkind = 'openai'\nbase_url = 'api.openai.com'\n", "[providers.openai]",
     "must start with http"),
    (MINIMAL + "[labels.Chat]\ncategory = 'text'\ncredits = 1\nvision = 'yes'\n", "[labels.Chat]",
     "'vision' must be true or false"),
    (MINIMAL + "[labels.Pic]\ncategory = 'image'\ncredits = 1\nvision = true\n", "[labels.Pic]",
     "'vision' is for text labels"),
    ("[providers.a]\nkind = 'anthropic'\nmodels = { transcription = 'claude' }\n", "[providers.a] models",
     "kind 'anthropic' cannot serve transcription"),
    ("[providers.openai]\nkind = 'openai'\noptions = { vision = 1 }\n", "[providers.openai] options",
     "'vision' must be true or false"),
    ("[providers.openai]\nkind = 'openai'\noptions = { edit_ops = ['paint'] }\n", "[providers.openai] options",
     "'edit_ops' must be a list of operation names"),
    (MINIMAL + "[manager]\ncircuit_failures = 0\n", "[manager]", "'circuit_failures' must be a whole number"),
    (MINIMAL + "[manager]\ncool = 1\n", "[manager]", "unknown key 'cool'"),
    (MINIMAL + "[extras]\nx = 1\n", "top level", "unknown key 'extras'"),
    ("", "[providers]", "no provider is defined"),
]


@pytest.mark.parametrize(("text", "entry", "problem"), BAD_FILES)
def test_each_mistake_names_file_entry_and_problem(tmp_path: Path, text: str, entry: str, problem: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ProvidersFileError) as caught:
        load_providers(path, env={})
    message = str(caught.value)
    assert message.startswith(f"{path}: {entry}: "), message
    assert problem in message, message


def test_broken_toml_and_missing_file_name_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[providers.openai\nkind=")
    with pytest.raises(ProvidersFileError, match=rf"^{path}: not valid TOML"):
        load_providers(path, env={})
    with pytest.raises(ProvidersFileError, match="cannot read"):
        load_providers(tmp_path / "absent.toml", env={})


def test_environment_overrides_keys_and_base_urls(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + """
        [providers.my-proxy]
        kind = "openai"
        models = { text = "gpt-4o-mini" }

        [providers.hf]
        kind = "huggingface"
        api_key_env = "MY_HF"
        models = { image = "flux" }

        [providers.huggingface]
        kind = "huggingface"
        models = { image = "flux" }
    """)
    env = {"OPENAI_API_KEY": "sk-official", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
           "MY_PROXY_API_KEY": "sk-proxy", "MY_PROXY_BASE_URL": "http://proxy.local/v1",
           "MY_HF": "hf-own", "HF_TOKEN": "hf-official"}
    config = load_providers(path, env=env)
    openai, proxy = config.providers["openai"], config.providers["my-proxy"]
    assert (openai.api_key, openai.api_key_env, openai.base_url) == ("sk-official", "OPENAI_API_KEY",
                                                                       "http://127.0.0.1:9/v1")
    assert (proxy.api_key, proxy.base_url) == ("sk-proxy", "http://proxy.local/v1")
    assert config.providers["hf"].api_key == "hf-own"
    assert config.providers["huggingface"].api_key == "hf-official"
    assert config.providers["huggingface"].base_url == "https://router.huggingface.co"


def test_name_api_key_wins_over_the_official_name(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL)
    env = {"OPENAI_API_KEY": "official"}
    assert load_providers(path, env=env).providers["openai"].api_key == "official"
    path = write(tmp_path, MINIMAL.replace("[providers.openai]", "[providers.replicate]")
                 .replace('kind = "openai"', 'kind = "replicate"'))
    both = {"REPLICATE_API_KEY": "by-name", "REPLICATE_API_TOKEN": "official"}
    assert load_providers(path, env=both).providers["replicate"].api_key == "by-name"
    assert load_providers(path, env={"REPLICATE_API_TOKEN": "t"}).providers["replicate"].api_key == "t"


def test_official_key_is_not_offered_to_another_entry_of_the_same_kind(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("[providers.openai]", "[providers.corp-proxy]"))
    config = load_providers(path, env={"OPENAI_API_KEY": "sk-real"})
    proxy = config.providers["corp-proxy"]
    assert proxy.api_key is None and not proxy.enabled
    assert config.disabled_providers() == {"corp-proxy": "no API key (set CORP_PROXY_API_KEY)"}


def test_blank_key_counts_as_missing(tmp_path: Path) -> None:
    config = load_providers(write(tmp_path, MINIMAL), env={"OPENAI_API_KEY": "  "})
    assert not config.providers["openai"].enabled
    assert config.enabled_providers() == {}


def test_routes_strategies_budgets_settings(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + """
        daily_budget_usd = 2.5
        [providers.groq]
        kind = "groq"
        models = { text = "llama" }
        [routes]
        text = { providers = ["groq", "openai"], strategy = "fastest" }
        [labels.Chat]
        category = "text"
        credits = 2
        models = { groq = "llama-big" }
        [manager]
        long_cooldown_s = 60
        circuit_failures = 5
        fallback_on_content_policy = true
        cache_ttl_s = {}
    """)
    config = load_providers(path, env={})
    assert config.providers["openai"].daily_budget_micros == 2_500_000
    assert config.routes[Category.TEXT].providers == ("groq", "openai")
    assert config.routes[Category.TEXT].strategy == "fastest"
    assert config.labels["Chat"].models == {"groq": "llama-big"} and config.labels["Chat"].route is None
    settings = config.settings
    assert (settings.long_cooldown_s, settings.circuit_failures, settings.fallback_on_content_policy) == (60, 5, True)
    assert settings.cache_ttl_s == {}
    assert config.routes[Category.IMAGE].providers == ()  # nobody has an image model


def test_category_without_route_uses_providers_with_a_model_in_file_order(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + """
        [providers.deepseek]
        kind = "deepseek"
        models = { text = "deepseek-chat" }
    """)
    assert load_providers(path, env={}).routes[Category.TEXT].providers == ("openai", "deepseek")


def test_which_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_path(env={}).name == "default_providers.toml"
    local = write(tmp_path, MINIMAL)
    assert resolve_path(env={}) == Path("providers.toml")
    other = write(tmp_path, MINIMAL, "elsewhere.toml")
    assert resolve_path(env={"PROVIDERS_FILE": str(other)}) == other
    assert load_providers(env={"PROVIDERS_FILE": str(other)}).source == str(other)
    assert load_providers(env={}).source == "providers.toml" and local.exists()


@given(st.decimals(min_value=0, max_value=1000, places=6, allow_nan=False, allow_infinity=False))
def test_prices_in_usd_become_exact_micros(tmp_path_factory: pytest.TempPathFactory, price: Decimal) -> None:
    path = write(tmp_path_factory.mktemp("p"), f"[providers.openai]\nkind='openai'\nprices={{ image = {price} }}\n")
    micros = load_providers(path, env={}).providers["openai"].prices.image
    assert micros == usd_to_micros(price) == int(price * 1_000_000)
