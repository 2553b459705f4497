"""`python -m providers`: try one real request through the manager, or check the providers file.

    python -m providers try text "Say hi" [--label "Fast chat"] [--json]
    python -m providers try image "a red fox" --out fox.png -o size=1024x1024
    python -m providers try image_edit "remove the car" --image in.png --edit-op inpaint
    python -m providers check

Provider keys are read as the bot reads them: the environment, over `./.env` when it exists.

Exit codes: 0 served / file fine, 1 every provider failed, 2 a usage or providers-file error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import mimetypes
import sys
from pathlib import Path
from typing import Any

import httpx
from loguru import logger

from providers.config import ProvidersConfig
from providers.env import provider_env
from providers.errors import AllProvidersFailed, Attempt
from providers.loader import ProvidersFileError, load_providers
from providers.manager import ProviderManager
from providers.outbound import FetchError, OutboundPolicy
from providers.result import Result
from providers.types import Category, EditOp, GenerationRequest, Media

CLI_MAX_MEDIA_BYTES = 1 << 30  # a long video fits; a provider streaming without end does not
CLI_DOWNLOAD_S = 300.0  # the deadline of one whole download


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m providers", description=__doc__.split("\n")[0])
    parser.add_argument("--file", help="providers file (default: $PROVIDERS_FILE, ./providers.toml, the default)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the manager does")
    sub = parser.add_subparsers(dest="command", required=True)
    try_ = sub.add_parser("try", help="send one request through the configured providers")
    try_.add_argument("category", choices=[c.value for c in Category])
    try_.add_argument("prompt")
    try_.add_argument("--label", help="a label from the providers file (its route and models)")
    try_.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    try_.add_argument("--out", help="where to save media (default: ./try-<category>-<provider>.<ext>)")
    try_.add_argument("--image", help="image_edit: the source image file")
    try_.add_argument("--edit-op", choices=[op.value for op in EditOp], default=EditOp.INPAINT.value)
    try_.add_argument("-o", "--option", action="append", default=[], metavar="KEY=VALUE",
                      help="a request option (size=1024x1024, voice=alloy, duration_s=5); JSON values allowed")
    sub.add_parser("check", help="list providers (enabled or why not), routes and labels")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logger.remove()
    logger.add(sys.stderr, level="DEBUG" if args.verbose else "ERROR")
    try:
        # the bot's reading of the environment (`.env` under the real one): `check` must see what it sees
        config = load_providers(args.file, env=provider_env())
    except ProvidersFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.command == "check":
        print(describe(config))
        return 0
    request = _request(args)
    if request is None:
        return 2
    return asyncio.run(_try(config, request, args))


def _options(pairs: list[str]) -> dict[str, Any] | None:
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            print(f"error: --option wants KEY=VALUE, got {pair!r}", file=sys.stderr)
            return None
        try:
            options[key] = json.loads(raw)
        except ValueError:
            options[key] = raw
    return options


def _request(args: argparse.Namespace) -> GenerationRequest | None:
    category = Category(args.category)
    options = _options(args.option)
    if options is None:
        return None
    if category is not Category.IMAGE_EDIT:
        return GenerationRequest(category, prompt=args.prompt, options=options)
    if not args.image:
        print("error: image_edit needs --image FILE", file=sys.stderr)
        return None
    image = Path(args.image)
    mime = mimetypes.guess_type(image.name)[0] or "image/png"
    return GenerationRequest(category, prompt=args.prompt, image=image.read_bytes(), image_mime=mime,
                             edit_op=EditOp(args.edit_op), options=options)


async def _try(config: ProvidersConfig, request: GenerationRequest, args: argparse.Namespace) -> int:
    async with ProviderManager(config, max_media_bytes=CLI_MAX_MEDIA_BYTES) as manager:
        try:
            result = await manager.generate(request, label=args.label)
        except AllProvidersFailed as failed:
            _print_failure(failed, as_json=args.json)
            return 1
        except ValueError as exc:  # an unknown label, or one of another category
            print(f"error: {exc}", file=sys.stderr)
            return 2
        try:
            policy = OutboundPolicy(manager.allowed_origins())
            files = [str(p) for p in await _save_media(manager.client, policy, result, args.out)]
        except FetchError as exc:  # names the host only: signed URLs carry tokens
            print(f"error: served by {result.provider}, but its media could not be fetched: {exc}",
                  file=sys.stderr)
            return 1
    _print_result(result, files, as_json=args.json)
    return 0


async def _save_media(client: httpx.AsyncClient, policy: OutboundPolicy, result: Result,
                      out: str | None) -> list[Path]:
    saved = []
    for n, media in enumerate(result.media):
        data = media.data if media.data is not None else await _download(client, policy, media)
        ext = mimetypes.guess_extension(media.mime.split(";")[0]) or ".bin"
        if out:
            path = Path(out) if n == 0 else Path(out).with_stem(f"{Path(out).stem}-{n + 1}")
        else:
            path = Path(f"try-{result.category}-{result.provider}{'' if n == 0 else f'-{n + 1}'}{ext}")
        path.write_bytes(data)
        saved.append(path.resolve())
    return saved


async def _download(client: httpx.AsyncClient, policy: OutboundPolicy, media: Media) -> bytes:
    assert media.url is not None
    # the same policy as the bot's: a provider's answer must not make us read a private address
    return await policy.fetch(client, media.url, max_bytes=CLI_MAX_MEDIA_BYTES, deadline_s=CLI_DOWNLOAD_S)


def _attempt_line(n: int, a: Attempt) -> str:
    outcome = "ok" if a.ok else str(a.kind)
    line = (f"  {n}. {a.provider:<12} {a.model:<28} {outcome:<16} {a.status or '-':>4} "
            f"{a.latency_ms:8.0f} ms  ${a.cost_micros / 1e6:.6f}")
    return f"{line}  {a.message}" if a.message else line


def _attempt_json(a: Attempt) -> dict[str, Any]:
    return {"provider": a.provider, "model": a.model, "kind": str(a.kind) if a.kind else None, "status": a.status,
            "latency_ms": round(a.latency_ms, 1), "cost_micros": a.cost_micros, "usage": a.usage.as_dict(),
            "job_id": a.job_id, "message": a.message}


def _print_result(result: Result, files: list[str], *, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"ok": True, "provider": result.provider, "model": result.model, "text": result.text,
                          "cost_micros": result.cost_micros, "cost_usd": result.cost_micros / 1e6,
                          "latency_ms": round(result.latency_ms, 1), "usage": result.usage.as_dict(),
                          "job_id": result.job_id, "files": files,
                          "attempts": [_attempt_json(a) for a in result.attempts]}, ensure_ascii=False))
        return
    print(f"served by {result.provider} ({result.model}) in {result.latency_ms:.0f} ms, "
          f"cost ${result.cost_micros / 1e6:.6f}")
    print("attempts:")
    for n, attempt in enumerate(result.attempts, 1):
        print(_attempt_line(n, attempt))
    if result.text:
        print("text:")
        print(result.text)
    for path in files:
        print(f"saved {path}")


def _print_failure(failed: AllProvidersFailed, *, as_json: bool) -> None:
    retry = failed.retry_at.isoformat() if failed.retry_at else None
    if as_json:
        print(json.dumps({"ok": False, "kind": str(failed.kind), "retry_at": retry, "skipped": failed.skipped,
                          "attempts": [_attempt_json(a) for a in failed.attempts]}, ensure_ascii=False))
        return
    print(f"all providers failed for {failed.category} ({failed.kind})")
    print("attempts:" if failed.attempts else "attempts: none")
    for n, attempt in enumerate(failed.attempts, 1):
        print(_attempt_line(n, attempt))
    for name, why in failed.skipped.items():
        print(f"  skipped {name}: {why}")
    print(f"retry after {retry}" if retry else "retrying will not help: change the request or the configuration")


def describe(config: ProvidersConfig) -> str:
    """The `check` listing: providers (enabled, or why not), routes and labels."""
    from providers.adapters import ADAPTERS

    disabled = config.disabled_providers()
    lines = [f"providers file: {config.source}", "", "providers:"]
    for name, p in config.providers.items():
        why = disabled.get(name) or (None if p.kind in ADAPTERS else f"no adapter for kind {p.kind!r}")
        state = "enabled " if why is None else "disabled"
        models = ", ".join(f"{c}={m}" for c, m in p.models.items()) or "no models"
        lines.append(f"  {name:<14} {p.kind:<12} {state}  {p.base_url}  {models}")
        if why:
            lines.append(f"  {'':<14} -> {why}")
    lines += ["", "routes:"]
    for category, route in config.routes.items():
        names = [n if n not in disabled else f"({n})" for n in route.providers]
        lines.append(f"  {category:<11} {route.strategy:<9} {' > '.join(names) or '(none)'}")
    lines += ["", "labels:"]
    for label in config.labels.values():
        order = " > ".join(label.route) if label.route else "category route"
        lines.append(f"  {label.name!r:<14} {label.category:<11} {label.credits:>3} credits  {order}")
    enabled = len(config.providers) - len(disabled)
    lines += ["", f"{enabled} of {len(config.providers)} providers enabled; (name) = disabled"]
    return "\n".join(lines)
