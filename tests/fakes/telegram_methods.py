"""The Bot API methods of the fake, one function each, with the real answers and error descriptions."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tests.fakes.telegram_state import ApiError, Draft, SentMessage, bad_request, check_text, image_size

if TYPE_CHECKING:
    from tests.fakes.telegram import FakeTelegram

UPLOAD_LIMIT = 50 * 1024 * 1024
_ACTIONS = {"typing", "upload_photo", "record_video", "upload_video", "record_voice", "upload_voice",
            "upload_document", "choose_sticker", "find_location", "record_video_note", "upload_video_note"}
_NOT_MODIFIED = ("message is not modified: specified new message content and reply markup are exactly the same "
                 "as a current content and reply markup of the message")


@dataclass
class Upload:
    data: bytes
    filename: str
    content_type: str


class Params:
    """Request parameters from query, form, JSON or multipart: strings or native values alike."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw

    def get(self, name: str) -> Any:
        value = self.raw.get(name)
        return None if value == "" else value

    def get_str(self, name: str) -> str | None:
        value = self.get(name)
        return None if value is None else str(value)

    def get_int(self, name: str, default: int | None = None) -> int | None:
        value = self.get(name)
        if value is None:
            return default
        try:
            return int(value)
        except (TypeError, ValueError):
            raise bad_request(f"invalid {name} specified") from None

    def need_int(self, name: str) -> int:
        value = self.get_int(name)
        if value is None:
            raise bad_request(f"{name} is empty")
        return value

    def get_bool(self, name: str) -> bool:
        value = self.get(name)
        return value in (True, "true", "True", "1", 1)

    def get_json(self, name: str) -> Any:
        value = self.get(name)
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                raise bad_request(f"can't parse {name} JSON object") from None
        return value


Method = Callable[["FakeTelegram", Params], Awaitable[Any]]
METHODS: dict[str, Method] = {}


def api(name: str) -> Callable[[Method], Method]:
    def register(fn: Method) -> Method:
        METHODS[name.lower()] = fn
        return fn
    return register


def chat_id_of(fake: FakeTelegram, p: Params) -> int:
    raw = p.get_str("chat_id")
    if raw is None:
        raise bad_request("chat_id is empty")
    if not re.fullmatch(r"-?\d+", raw):
        raise bad_request("chat not found")
    chat_id = int(raw)
    if chat_id in fake.blocked:
        raise ApiError(403, "Forbidden: bot was blocked by the user")
    return chat_id


def _find(fake: FakeTelegram, chat_id: int, message_id: int, missing: str) -> SentMessage:
    for sent in fake.sent.get(chat_id, []):
        if sent.message_id == message_id and not sent.deleted:
            return sent
    raise bad_request(missing)


# --- bot and updates --------------------------------------------------------------------------
@api("getMe")
async def get_me(fake: FakeTelegram, p: Params) -> Any:
    return {**fake.bot_user, "can_join_groups": True, "can_read_all_group_messages": False,
            "supports_inline_queries": False, "can_connect_to_business": False, "has_main_web_app": False}


@api("getUpdates")
async def get_updates(fake: FakeTelegram, p: Params) -> Any:
    if fake.webhook.get("url"):
        raise ApiError(409, "Conflict: can't use getUpdates method while webhook is active; "
                            "use deleteWebhook to delete the webhook first")
    offset, limit = p.get_int("offset", 0) or 0, min(max(p.get_int("limit", 100) or 100, 1), 100)
    timeout = max(p.get_int("timeout", 0) or 0, 0)
    allowed = p.get_json("allowed_updates")
    if allowed is not None:  # the Bot API remembers the last list given
        fake.allowed_updates = list(allowed)
    generation = fake.next_poll()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        if fake.poll_superseded(generation):
            raise ApiError(409, "Conflict: terminated by other getUpdates request; "
                                "make sure that only one bot instance is running")
        batch = fake.take_updates(offset, limit)
        if batch or fake.closing or loop.time() >= deadline:
            return batch
        await fake.wait_change(deadline - loop.time())


@api("setWebhook")
async def set_webhook(fake: FakeTelegram, p: Params) -> Any:
    url = p.get_str("url") or ""
    if url and not url.startswith("https://"):
        raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
    if p.get_bool("drop_pending_updates"):
        fake.drop_pending()
    fake.webhook = {"url": url, "secret_token": p.get_str("secret_token"),
                    "allowed_updates": p.get_json("allowed_updates")}
    return True


@api("deleteWebhook")
async def delete_webhook(fake: FakeTelegram, p: Params) -> Any:
    if p.get_bool("drop_pending_updates"):
        fake.drop_pending()
    fake.webhook = {}
    return True


@api("getWebhookInfo")
async def get_webhook_info(fake: FakeTelegram, p: Params) -> Any:
    return {"url": fake.webhook.get("url", ""), "has_custom_certificate": False,
            "pending_update_count": fake.pending_updates()}


@api("setMyCommands")
async def set_my_commands(fake: FakeTelegram, p: Params) -> Any:
    commands = p.get_json("commands")
    if not isinstance(commands, list):
        raise bad_request("commands is empty")
    for item in commands:
        if not re.fullmatch(r"[a-z0-9_]{1,32}", str(item.get("command", ""))):
            raise bad_request("BOT_COMMAND_INVALID")
        if not 1 <= len(str(item.get("description", ""))) <= 256:
            raise bad_request("command description is empty")
    fake.commands.append({"commands": commands, "scope": p.get_json("scope"),
                          "language_code": p.get_str("language_code")})
    return True


@api("getMyCommands")
async def get_my_commands(fake: FakeTelegram, p: Params) -> Any:
    scope, language = p.get_json("scope"), p.get_str("language_code")
    for payload in reversed(fake.commands):
        if payload["scope"] == scope and payload["language_code"] == language:
            return payload["commands"]
    return []


@api("deleteMyCommands")
async def delete_my_commands(fake: FakeTelegram, p: Params) -> Any:
    scope, language = p.get_json("scope"), p.get_str("language_code")
    fake.commands.append({"commands": [], "scope": scope, "language_code": language})
    return True


# --- messages ---------------------------------------------------------------------------------
def _reply_to(fake: FakeTelegram, chat_id: int, p: Params) -> dict[str, Any]:
    params = p.get_json("reply_parameters") or {}
    message_id = params.get("message_id") or p.get_int("reply_to_message_id")
    if not message_id:
        return {}
    original = fake.chat_messages[chat_id].get(int(message_id))
    if original is None:
        if params.get("allow_sending_without_reply") or p.get_bool("allow_sending_without_reply"):
            return {}
        raise bad_request("message to be replied not found")
    return {"reply_to_message": {k: v for k, v in original.items() if k != "reply_to_message"}}


def _markup(p: Params) -> dict[str, Any] | None:
    markup = p.get_json("reply_markup")
    if markup is not None and not isinstance(markup, dict):
        raise bad_request("can't parse reply keyboard markup JSON object")
    return markup


def record_sent(fake: FakeTelegram, chat_id: int, method: str, extra: dict[str, Any], p: Params,
                raw_text: str | None, **fields: Any) -> dict[str, Any]:
    markup = _markup(p)
    if markup and "inline_keyboard" in markup:
        extra["reply_markup"] = markup  # the API echoes inline keyboards only
    if (thread_id := p.get_int("message_thread_id")) is not None:
        extra.update(message_thread_id=thread_id, is_topic_message=True)
    message = fake.new_message(chat_id, fake.bot_user, {**_reply_to(fake, chat_id, p), **extra})
    sent = SentMessage(chat_id, message["message_id"], method, raw_text, p.get_str("parse_mode"),
                       reply_markup=markup, payload=message, **fields)
    sent.history.append(sent.plain)
    sent.history_at.append(asyncio.get_running_loop().time())
    fake.sent[chat_id].append(sent)
    return message


@api("sendMessage")
async def send_message(fake: FakeTelegram, p: Params) -> Any:
    chat_id = chat_id_of(fake, p)
    raw = p.get_str("text") or ""
    plain, entities = check_text(raw, p.get_str("parse_mode"))
    extra: dict[str, Any] = {"text": plain}
    if entities:
        extra["entities"] = entities
    return record_sent(fake, chat_id, "sendMessage", extra, p, raw, entities=entities)


@api("sendMessageDraft")
async def send_message_draft(fake: FakeTelegram, p: Params) -> Any:
    """Bot API 9.5: a draft streamed into a private chat; ephemeral, so nothing is stored as a message.
    `fake.drafts_supported = False` answers as a Bot API server that predates the method does. The error
    for a chat that is not private is this fake's own wording."""
    if not fake.drafts_supported:
        raise ApiError(404, "Not Found")
    chat_id = chat_id_of(fake, p)
    if chat_id < 0:
        raise bad_request("TEXTDRAFT_PEER_INVALID")
    draft_id = p.need_int("draft_id")
    if draft_id == 0:
        raise bad_request("draft_id must be non-zero")
    raw = p.get_str("text") or ""
    plain = check_text(raw, p.get_str("parse_mode"))[0] if raw else ""
    fake.drafts[chat_id].append(Draft(chat_id, draft_id, plain, p.get_int("message_thread_id"),
                                      asyncio.get_running_loop().time()))
    return True


def _target(fake: FakeTelegram, p: Params, missing: str) -> SentMessage:
    if p.get_str("inline_message_id"):
        raise bad_request("MESSAGE_ID_INVALID")
    return _find(fake, chat_id_of(fake, p), p.need_int("message_id"), missing)


def _apply_edit(fake: FakeTelegram, sent: SentMessage, changes: dict[str, Any], p: Params,
                replaced: tuple[str, ...] = ()) -> Any:
    markup = _markup(p)
    dropped = {"edit_date", "reply_markup", *replaced}
    new_payload = {k: v for k, v in sent.payload.items() if k not in dropped} | changes
    if markup and "inline_keyboard" in markup:
        new_payload["reply_markup"] = markup
    if new_payload == {k: v for k, v in sent.payload.items() if k != "edit_date"}:
        raise bad_request(_NOT_MODIFIED)
    new_payload["edit_date"] = max(int(time.time()), sent.payload["date"])
    sent.payload, sent.reply_markup = new_payload, markup
    fake.chat_messages[sent.chat_id][sent.message_id] = new_payload
    if sent.plain != sent.history[-1]:
        sent.history.append(sent.plain)
        sent.history_at.append(asyncio.get_running_loop().time())
    return new_payload


@api("editMessageText")
async def edit_message_text(fake: FakeTelegram, p: Params) -> Any:
    sent = _target(fake, p, "message to edit not found")
    if sent.media_kind is not None:
        raise bad_request("there is no text in the message to edit")
    raw = p.get_str("text") or ""
    plain, entities = check_text(raw, p.get_str("parse_mode"))
    changes: dict[str, Any] = {"text": plain, "entities": entities} if entities else {"text": plain}
    result = _apply_edit(fake, sent, changes, p, ("text", "entities"))
    sent.text, sent.parse_mode, sent.entities = raw, p.get_str("parse_mode"), entities
    return result


@api("editMessageCaption")
async def edit_message_caption(fake: FakeTelegram, p: Params) -> Any:
    sent = _target(fake, p, "message to edit not found")
    raw = p.get_str("caption") or ""
    plain, entities = check_text(raw, p.get_str("parse_mode"), caption=True)
    changes: dict[str, Any] = {"caption": plain, **({"caption_entities": entities} if entities else {})}
    result = _apply_edit(fake, sent, changes, p, ("caption", "caption_entities"))
    sent.text, sent.parse_mode, sent.entities = raw, p.get_str("parse_mode"), entities
    return result


@api("editMessageReplyMarkup")
async def edit_message_reply_markup(fake: FakeTelegram, p: Params) -> Any:
    return _apply_edit(fake, _target(fake, p, "message to edit not found"), {}, p)


@api("deleteMessage")
async def delete_message(fake: FakeTelegram, p: Params) -> Any:
    chat_id, message_id = chat_id_of(fake, p), p.need_int("message_id")
    if message_id not in fake.chat_messages.get(chat_id, {}):
        raise bad_request("message to delete not found")
    del fake.chat_messages[chat_id][message_id]
    for sent in fake.sent.get(chat_id, []):
        if sent.message_id == message_id:
            sent.deleted = True
    return True


@api("sendChatAction")
async def send_chat_action(fake: FakeTelegram, p: Params) -> Any:
    chat_id, action = chat_id_of(fake, p), p.get_str("action") or ""
    if action not in _ACTIONS:
        raise bad_request("wrong parameter action in request")
    fake.actions.append((chat_id, action))
    return True


@api("answerCallbackQuery")
async def answer_callback_query(fake: FakeTelegram, p: Params) -> Any:
    query_id = p.get_str("callback_query_id") or ""
    if query_id not in fake.pending_callbacks:
        raise bad_request("query is too old and response timeout expired or query ID is invalid")
    fake.pending_callbacks.discard(query_id)
    fake.callback_answers.append({"id": query_id, "text": p.get_str("text"), "show_alert": p.get_bool("show_alert")})
    return True


@api("getFile")
async def get_file(fake: FakeTelegram, p: Params) -> Any:
    stored = fake.files.get(p.get_str("file_id") or "")
    if stored is None:
        raise bad_request("invalid file_id")
    return stored.api()


def ensure_image(fake: FakeTelegram, data: bytes) -> tuple[int, int]:
    size = image_size(data)
    if size is None:
        if fake.validate_images:
            raise bad_request("IMAGE_PROCESS_FAILED")
        return (0, 0)
    return size
