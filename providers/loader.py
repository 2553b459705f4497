"""Load and validate the providers file (design.md "The providers file") into `ProvidersConfig`.

Which file: the `path` argument, else `PROVIDERS_FILE`, else `./providers.toml` when it exists, else the
packaged `default_providers.toml`. Every mistake stops start-up with a `ProvidersFileError` whose message
names the file, the entry and what is wrong. Keys come from the environment only (never the file), so a
provider without one is kept but disabled.

A model for a category its kind cannot serve is an error, not a warning: it could never be used, and a
silently ignored line is how a route ends up with nobody in it. Route entries must have a model for
their category for the same reason.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from providers.config import LabelConfig, ManagerSettings, Prices, ProviderConfig, ProvidersConfig, RouteConfig
from providers.kinds import KINDS, env_prefix
from providers.loader_checks import Checker, ProvidersFileError, supported_categories
from providers.types import Category, EditOp

__all__ = ["ProvidersFileError", "load_providers", "parse_providers", "resolve_path"]

DEFAULT_FILE = "default_providers.toml"
_TOP_KEYS = {"providers", "routes", "labels", "manager"}
_PROVIDER_KEYS = {"kind", "base_url", "api_key_env", "timeout_s", "total_timeout_s", "first_token_timeout_s",
                  "models", "prices", "model_prices", "headers", "options", "daily_budget_usd", "description"}
_LABEL_KEYS = {"category", "credits", "route", "description", "models", "vision"}
_ROUTE_KEYS = {"providers", "strategy"}
_STRATEGIES = ("priority", "cheapest", "fastest")
_SETTINGS_FLOATS = ("long_cooldown_s", "default_rate_limit_cooldown_s", "circuit_open_s", "quick_retry_delay_s")
_SETTINGS_INTS = ("circuit_failures", "latency_window", "cache_max_entries")
_SETTINGS_KEYS = {*_SETTINGS_FLOATS, *_SETTINGS_INTS, "fallback_on_content_policy", "cache_ttl_s"}


def resolve_path(path: str | os.PathLike[str] | None = None, env: Mapping[str, str] = os.environ) -> Path:
    if path is not None:
        return Path(path)
    if env.get("PROVIDERS_FILE"):
        return Path(env["PROVIDERS_FILE"])
    local = Path("providers.toml")
    if local.is_file():
        return local
    return Path(str(resources.files("providers").joinpath(DEFAULT_FILE)))


def load_providers(path: str | os.PathLike[str] | None = None,
                   env: Mapping[str, str] = os.environ) -> ProvidersConfig:
    source = resolve_path(path, env)
    try:
        raw = source.read_bytes()
    except OSError as exc:
        raise ProvidersFileError(f"{source}: cannot read the providers file: {exc.strerror or exc}") from exc
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ProvidersFileError(f"{source}: not valid TOML: {exc}") from exc
    return parse_providers(data, str(source), env)


def parse_providers(data: Mapping[str, Any], source: str, env: Mapping[str, str] = os.environ) -> ProvidersConfig:
    check = Checker(source)
    check.keys("top level", data, _TOP_KEYS)
    providers_table = check.table("[providers]", data.get("providers", {}))
    if not providers_table:
        check.fail("[providers]", "no provider is defined")
    providers = {name: _provider(check, str(name), body, env) for name, body in providers_table.items()}
    routes = _routes(check, check.table("[routes]", data.get("routes", {})), providers)
    labels = {str(name): _label(check, str(name), body, providers, routes)
              for name, body in check.table("[labels]", data.get("labels", {})).items()}
    settings = _settings(check, check.table("[manager]", data.get("manager", {})))
    return ProvidersConfig(source=source, providers=providers, routes=routes, labels=labels, settings=settings)


# --- providers -------------------------------------------------------------------------------

def _provider(check: Checker, name: str, body: Any, env: Mapping[str, str]) -> ProviderConfig:
    entry = f"[providers.{name}]"
    table = check.table(entry, body)
    check.keys(entry, table, _PROVIDER_KEYS)
    kind = check.string(entry, "kind", table.get("kind"))
    if kind not in KINDS:
        check.fail(entry, f"unknown kind {kind!r} (known: {', '.join(sorted(KINDS))})")
    info = KINDS[kind]
    models = _models(check, entry, kind, table.get("models", {}))
    prefix = env_prefix(name)
    base_url = env.get(f"{prefix}_BASE_URL") or check.optional_string(entry, "base_url", table.get("base_url"))
    base_url = base_url or info.base_url
    if not base_url.startswith(("http://", "https://")):
        check.fail(entry, f"base_url {base_url!r} must start with http:// or https://")
    key_env, api_key = _api_key(check, entry, name, kind, table.get("api_key_env"), env)
    budget = table.get("daily_budget_usd")
    total, first = (None if table.get(k) is None else check.positive(entry, k, table[k])
                    for k in ("total_timeout_s", "first_token_timeout_s"))
    if total is not None and first is not None and first > total:
        check.fail(entry, f"'first_token_timeout_s' ({first:g}) must not exceed 'total_timeout_s' ({total:g})")
    return ProviderConfig(
        name=name, kind=kind, base_url=base_url, api_key=api_key, api_key_env=key_env,
        timeout_s=check.positive(entry, "timeout_s", table.get("timeout_s", 60.0)),
        total_timeout_s=total, first_token_timeout_s=first,
        models=models,
        prices=_prices(check, f"{entry} prices", table.get("prices", {})),
        model_prices={str(model): _prices(check, f"{entry} model_prices.{model!r}", prices)
                      for model, prices in check.table(f"{entry} model_prices",
                                                       table.get("model_prices", {})).items()},
        headers=check.string_map(f"{entry} headers", table.get("headers", {})),
        options=_options(check, f"{entry} options", table.get("options", {})),
        daily_budget_micros=None if budget is None else check.usd(entry, "daily_budget_usd", budget),
    )


def _models(check: Checker, entry: str, kind: str, body: Any) -> dict[Category, str]:
    table = check.table(f"{entry} models", body)
    supported = supported_categories(kind)
    models: dict[Category, str] = {}
    for key, value in table.items():
        category = check.category(f"{entry} models", key)
        if category not in supported:
            check.fail(f"{entry} models", f"kind {kind!r} cannot serve {category} "
                                          f"(it serves: {', '.join(sorted(supported)) or 'nothing yet'})")
        models[category] = check.string(f"{entry} models", str(key), value)
    return models


def _options(check: Checker, entry: str, body: Any) -> dict[str, Any]:
    """Adapter-specific options, free-form except the capabilities the manager acts on (providers.base):
    `vision` is true or false, `edit_ops` a list of operation names."""
    options = dict(check.table(entry, body))
    if "vision" in options and not isinstance(options["vision"], bool):
        check.fail(entry, "'vision' must be true or false")
    if "edit_ops" in options:
        ops = options["edit_ops"]
        known = [op.value for op in EditOp]
        if not isinstance(ops, list) or not all(isinstance(op, str) and op in known for op in ops):
            check.fail(entry, f"'edit_ops' must be a list of operation names (known: {', '.join(known)})")
    return options


def _api_key(check: Checker, entry: str, name: str, kind: str, file_env: Any,
             env: Mapping[str, str]) -> tuple[str, str | None]:
    """The first non-empty of: the file's api_key_env, NAME_API_KEY, and (only when the provider is
    named after its kind) the provider's official variable. Official names are not offered to other
    providers of the same kind: a proxy entry must not receive the real provider's key by accident."""
    own = check.optional_string(entry, "api_key_env", file_env)
    official = KINDS[kind].official_key_envs if env_prefix(name) == env_prefix(kind) else ()
    candidates = [n for n in (own, f"{env_prefix(name)}_API_KEY", *official) if n]
    for var in candidates:
        value = env.get(var, "").strip()
        if value:
            return var, value
    return own or (official[0] if official else candidates[0]), None


def _prices(check: Checker, entry: str, body: Any) -> Prices:
    table = check.table(entry, body)
    check.keys(entry, table, set(Prices.__dataclass_fields__))
    return Prices(**{str(k): check.price(entry, str(k), v) for k, v in table.items()})


# --- routes and labels -----------------------------------------------------------------------

def _routes(check: Checker, table: Mapping[str, Any],
            providers: Mapping[str, ProviderConfig]) -> dict[Category, RouteConfig]:
    """`text = ["a", "b"]` (priority order) or `image = { providers = [...], strategy = "cheapest" }`.
    A category without a route uses every provider with a model for it, in file order."""
    routes: dict[Category, RouteConfig] = {}
    for key, value in table.items():
        category = check.category("[routes]", key)
        entry = f"[routes] {category}"
        strategy: Any = "priority"
        if isinstance(value, Mapping):
            check.keys(entry, value, _ROUTE_KEYS)
            strategy = value.get("strategy", "priority")
            value = value.get("providers")
        if strategy not in _STRATEGIES:
            check.fail(entry, f"unknown strategy {strategy!r} (known: {', '.join(_STRATEGIES)})")
        names = check.route(entry, value, providers)
        for name in names:
            if providers[name].model_for(category) is None:
                check.fail(entry, f"provider {name!r} has no model for {category} "
                                  f"(add it to [providers.{name}] models)")
        routes[category] = RouteConfig(category, names, strategy)
    for category in Category:
        if category not in routes:
            names = tuple(n for n, p in providers.items() if p.model_for(category) is not None)
            routes[category] = RouteConfig(category, names)
    return routes


def _label(check: Checker, name: str, body: Any, providers: Mapping[str, ProviderConfig],
           routes: Mapping[Category, RouteConfig]) -> LabelConfig:
    entry = f"[labels.{name!r}]" if not name.isidentifier() else f"[labels.{name}]"
    table = check.table(entry, body)
    check.keys(entry, table, _LABEL_KEYS)
    if "category" not in table:
        check.fail(entry, f"missing 'category' (one of: {', '.join(c.value for c in Category)})")
    category = check.category(entry, table["category"])
    credits = table.get("credits")
    if not isinstance(credits, int) or isinstance(credits, bool) or credits < 0:
        check.fail(entry, f"'credits' must be a whole number >= 0, got {credits!r}")
    models = check.string_map(f"{entry} models", table.get("models", {}))
    for provider in models:
        if provider not in providers:
            check.fail(f"{entry} models", f"names provider {provider!r}, which is not defined in [providers]")
    route = check.route(entry, table["route"], providers) if "route" in table else None
    for provider in route or ():
        if provider not in models and providers[provider].model_for(category) is None:
            check.fail(entry, f"route names {provider!r}, which has no model for {category} "
                              f"(add one to this label's models or to [providers.{provider}] models)")
    description = check.optional_string(entry, "description", table.get("description")) or ""
    vision = table.get("vision", False)
    if not isinstance(vision, bool):
        check.fail(entry, "'vision' must be true or false")
    if vision and category is not Category.TEXT:
        check.fail(entry, f"'vision' is for text labels (models that read images in a chat), not {category}")
    return LabelConfig(name=name, category=category, credits=credits, route=route,
                       description=description, models=models, vision=vision)


def _settings(check: Checker, table: Mapping[str, Any]) -> ManagerSettings:
    entry = "[manager]"
    check.keys(entry, table, _SETTINGS_KEYS)
    values: dict[str, Any] = {}
    for key in _SETTINGS_FLOATS:
        if key in table:
            values[key] = check.non_negative(entry, key, table[key])
    for key in _SETTINGS_INTS:
        if key in table:
            values[key] = check.positive_int(entry, key, table[key])
    if "fallback_on_content_policy" in table:
        if not isinstance(table["fallback_on_content_policy"], bool):
            check.fail(entry, "'fallback_on_content_policy' must be true or false")
        values["fallback_on_content_policy"] = table["fallback_on_content_policy"]
    if "cache_ttl_s" in table:  # replaces the default: `cache_ttl_s = {}` turns caching off
        ttl = check.table(f"{entry} cache_ttl_s", table["cache_ttl_s"])
        values["cache_ttl_s"] = {check.category(f"{entry} cache_ttl_s", k):
                                 check.non_negative(f"{entry} cache_ttl_s", str(k), v) for k, v in ttl.items()}
    return ManagerSettings(**values)
