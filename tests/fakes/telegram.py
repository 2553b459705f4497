"""A loopback fake of the Telegram Bot API, spoken to by a real aiogram Bot (or `python -m bot`).

    fake = await FakeTelegram().start()
    bot = Bot(fake.token, session=AiohttpSession(api=TelegramAPIServer.from_base(fake.url)))
    update_id = fake.push_message(42, "hello")          # the bot receives it through getUpdates
    await fake.wait_for(lambda: fake.last_text(42) == "Hi!", timeout=5)
    fake.rate_limit("editMessageText", times=1, retry_after=2)   # next edit answers 429
    fake.push_group_text(-100123, 42, "@fake_ai_bot hi", reply_to=7, thread_id=3)   # in a group's topic
    fake.push_photo(42, png, "@fake_ai_bot what is it?", in_group=GroupPlace(-100123, thread_id=3))

URLs are `{url}/bot{token}/{method}` and `{url}/file/bot{token}/{file_path}` as on api.telegram.org.
Methods live in `telegram_methods.py`, `telegram_media.py` and `telegram_payments.py` (Stars: invoices,
pre-checkout, charges, refunds); the HTML checker and stored data in `telegram_state.py`.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from aiohttp import web

from tests.fakes import telegram_media  # noqa: F401  (importing it registers the media methods)
from tests.fakes.base import Call, FakeServer, respond
from tests.fakes.telegram_methods import METHODS, Params, Upload
from tests.fakes.telegram_payments import StarPayments  # importing it registers the payment methods
from tests.fakes.telegram_state import ApiError, Draft, SentMessage, StoredFile, image_size

T = TypeVar("T")
# Not delivered unless asked for by name in allowed_updates (the Bot API default)
_OPT_IN_UPDATES = {"chat_member", "message_reaction", "message_reaction_count"}


@dataclass
class _Pending:
    update: dict[str, Any]
    forced: bool = False  # re-delivered on purpose: ignores the confirming offset until delivered once
    deliveries: int = 0

    @property
    def kind(self) -> str:
        return next(k for k in self.update if k != "update_id")


@dataclass(frozen=True)
class GroupPlace:
    """Where in a group a photo or voice message is sent: `reply_to` the id of the group's message it
    answers, `thread_id` the forum topic it is in."""

    group_id: int
    reply_to: int | None = None
    thread_id: int | None = None


# The `from` Telegram puts on messages sent on behalf of a chat; `sender_chat` then names the chat.
GROUP_ANONYMOUS_BOT = {"id": 1087968824, "is_bot": True, "first_name": "Group", "username": "GroupAnonymousBot"}
CHANNEL_BOT = {"id": 136817688, "is_bot": True, "first_name": "Channel", "username": "Channel_Bot"}
SERVICE_USER = {"id": 777000, "is_bot": False, "first_name": "Telegram"}  # a linked channel's auto-forward


class FakeTelegram(FakeServer):
    """State the tests read: `sent` (chat id -> SentMessage list), `drafts` (chat id -> the sendMessageDraft
    calls), `commands` (setMyCommands payloads), `actions` (chat actions), `callback_answers`, `files`, `polls`
    (getUpdates calls so far), `delivered`, `errors` (method, description) of every error answered.

    Chats with a negative id are supergroups (`push_group_text`: mentions, replies, forum topics)."""

    def __init__(self, token: str = "123456789:AAFakeTokenForTests_abcdefghijklmno", *,
                 bot_username: str = "fake_ai_bot", bot_name: str = "Fake AI Bot") -> None:
        super().__init__()
        self.token = token
        self.bot_user = {"id": int(token.split(":")[0]), "is_bot": True, "first_name": bot_name,
                         "username": bot_username}
        self.sent: dict[int, list[SentMessage]] = defaultdict(list)
        self.drafts: dict[int, list[Draft]] = defaultdict(list)  # sendMessageDraft calls per chat
        self.drafts_supported = True  # False: sendMessageDraft answers 404, as an older Bot API server
        self.commands: list[dict[str, Any]] = []
        self.actions: list[tuple[int, str]] = []
        self.callback_answers: list[dict[str, Any]] = []
        self.files: dict[str, StoredFile] = {}
        self.polls = 0
        self.errors: list[tuple[str, str]] = []  # (method, description) of every error answered
        self.delivered: Counter[int] = Counter()  # update_id -> times handed out by getUpdates
        self.webhook: dict[str, Any] = {}
        self.allowed_updates: list[str] = []
        self.blocked: set[int] = set()
        self.validate_images = True  # photos must be real PNG/JPEG/GIF/WebP bytes ("IMAGE_PROCESS_FAILED")
        self.users: dict[int, dict[str, Any]] = {}
        self.chat_messages: dict[int, dict[int, dict[str, Any]]] = defaultdict(dict)  # both directions
        self.pending_callbacks: set[str] = set()
        self.stars = StarPayments(self)  # invoices, pre-checkout queries, charges and refunds in Stars
        self._pending: list[_Pending] = []
        self._update_log: dict[int, dict[str, Any]] = {}
        self._next_update_id = 500_000_000
        self._next_message_id: dict[int, int] = defaultdict(int)
        self._next_file = 0
        self._rate_limits: dict[str, deque[int]] = defaultdict(deque)
        self._changed = asyncio.Event()
        self._poll_generation = 0
        self._closing = False

    # --- server ------------------------------------------------------------------------------
    def routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/bot{token}/{method}", self._api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._download)

    async def stop(self) -> None:
        self._closing = True  # pending long polls return now instead of holding the shutdown
        self._notify()
        await super().stop()

    async def _api(self, request: web.Request) -> web.StreamResponse:
        call, scripted = await self.pre(request)
        if scripted is not None:
            return scripted
        if request.match_info["token"] != self.token:
            return _error(ApiError(401, "Unauthorized"))
        method = request.match_info["method"]
        handler = METHODS.get(method.lower())
        if handler is None:
            return _error(ApiError(404, "Not Found"))
        try:
            params = Params(_parse_params(request, call, await _parse_files(request, call)))
            self._take_rate_limit(method)
            result = await handler(self, params)
        except ApiError as exc:
            self.errors.append((method, exc.description))
            return _error(exc)
        finally:
            self._notify()
        return web.json_response({"ok": True, "result": result})

    async def _download(self, request: web.Request) -> web.StreamResponse:
        await self.record(request)
        stored = next((f for f in self.files.values() if f.file_path == request.match_info["path"]), None)
        if request.match_info["token"] != self.token:
            return _error(ApiError(401, "Unauthorized"))
        if stored is None:
            return _error(ApiError(404, "Not Found"))
        return web.Response(body=stored.data, content_type=stored.mime_type or "application/octet-stream")

    def _take_rate_limit(self, method: str) -> None:
        queue = self._rate_limits.get(method.lower())
        if queue:
            retry_after = queue.popleft()
            raise ApiError(429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after})

    # --- scenario knobs ----------------------------------------------------------------------
    def rate_limit(self, method: str, times: int = 1, retry_after: int = 1) -> None:
        """The next `times` calls of `method` answer 429 with this retry_after (flood control)."""
        self._rate_limits[method.lower()].extend([retry_after] * times)

    def block(self, user_id: int) -> None:
        """The user blocked the bot: sending to them answers 403."""
        self.blocked.add(user_id)

    # --- what users do -----------------------------------------------------------------------
    def push_message(self, user_id: int, text: str, *, first_name: str = "Tester", language_code: str = "en",
                     username: str | None = None, last_name: str | None = None) -> int:
        user = self.remember_user(user_id, first_name, language_code, username, last_name)
        message = self._user_message(user, {"text": text})
        if entities := _command_entities(text):
            message["entities"] = entities
        return self.push_update({"message": message})

    def push_voice(self, user_id: int, data: bytes, duration: int, *, mime_type: str = "audio/ogg",
                   language_code: str = "en", caption: str = "", first_name: str = "Tester",
                   in_group: GroupPlace | None = None) -> int:
        """A user's voice message (Opus in Ogg, as Telegram records them), `duration` seconds long; in
        their private chat or, with `in_group`, in a group."""
        user = self.remember_user(user_id, first_name, language_code, None, None)
        stored = self.store_file(data, "voice", ".oga", mime_type)
        voice = {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id, "duration": duration,
                 "mime_type": mime_type, "file_size": len(data)}
        return self.push_update({"message": self._message_with_caption(user, {"voice": voice}, caption, in_group)})

    def push_photo(self, user_id: int, photo_bytes: bytes, caption: str = "", *, first_name: str = "Tester",
                   language_code: str = "en", username: str | None = None, with_size: bool = True,
                   in_group: GroupPlace | None = None) -> int:
        """A user's photo; `with_size=False`: no file_size on it or from getFile, as Telegram may do;
        `in_group`: sent in a group, not in the private chat."""
        user = self.remember_user(user_id, first_name, language_code, username, None)
        stored = self.store_file(photo_bytes, "photos", ".jpg", "image/jpeg")
        stored.size_known = with_size
        width, height = image_size(photo_bytes) or (0, 0)
        size = {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id, "width": width, "height": height,
                **({"file_size": len(photo_bytes)} if with_size else {})}
        return self.push_update({"message": self._message_with_caption(user, {"photo": [size]}, caption, in_group)})

    def _message_with_caption(self, user: dict[str, Any], body: dict[str, Any], caption: str,
                              in_group: GroupPlace | None) -> dict[str, Any]:
        if caption:
            body = {**body, "caption": caption}
            if entities := _command_entities(caption) + _mention_entities(caption):
                body["caption_entities"] = entities
        if in_group is None:
            return self._user_message(user, body)
        return self.group_message(in_group.group_id, user, body, in_group.reply_to, in_group.thread_id)

    def push_group_text(self, group_id: int, user_id: int, text: str, *, reply_to: int | None = None,
                        thread_id: int | None = None, first_name: str = "Tester", language_code: str = "en") -> int:
        """A person's message in a supergroup, with the entities Telegram gives commands and @mentions;
        `reply_to`: the id of the group's message it answers; `thread_id`: the forum topic it is in."""
        user = self.remember_user(user_id, first_name, language_code, None, None)
        body: dict[str, Any] = {"text": text}
        if entities := _command_entities(text) + _mention_entities(text):
            body["entities"] = entities
        return self.push_update({"message": self.group_message(group_id, user, body, reply_to, thread_id)})

    def push_document(self, user_id: int, data: bytes, file_name: str, mime_type: str = "", caption: str = "", *,
                      group_id: int | None = None, with_size: bool = True) -> int:
        """A user's file (a document message), in their private chat or, with `group_id`, in a group."""
        user = self.remember_user(user_id, "Tester", "en", None, None)
        stored = self.store_file(data, "documents", "", mime_type, file_name)
        stored.size_known = with_size
        document = {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id, "file_name": file_name,
                    **({"mime_type": mime_type} if mime_type else {}),
                    **({"file_size": len(data)} if with_size else {})}
        body: dict[str, Any] = {"document": document}
        if caption:
            body["caption"] = caption
            if entities := _command_entities(caption) + _mention_entities(caption):
                body["caption_entities"] = entities
        message = self.group_message(group_id, user, body) if group_id is not None \
            else self._user_message(user, body)
        return self.push_update({"message": message})

    def group_message(self, group_id: int, sender: dict[str, Any], body: dict[str, Any], reply_to: int | None = None,
                      thread_id: int | None = None) -> dict[str, Any]:
        extra = dict(body)
        if reply_to is not None:
            original = self.chat_messages[group_id][reply_to]
            extra["reply_to_message"] = {k: v for k, v in original.items() if k != "reply_to_message"}
        if thread_id is not None:
            extra.update(message_thread_id=thread_id, is_topic_message=True)
        message = self.new_message(group_id, sender, extra)
        if thread_id is not None:
            message["chat"] = {**message["chat"], "is_forum": True}
        return message

    def push_callback(self, user_id: int, message_id: int, data: str) -> int:
        """The user pressed an inline button with this callback data under the bot's message."""
        user = self.remember_user(user_id, "Tester", "en", None, None)
        message = self.chat_messages[user_id].get(message_id)
        if message is None:
            raise KeyError(f"chat {user_id} has no message {message_id}")
        query_id = f"{user_id}{self._next_update_id}"
        self.pending_callbacks.add(query_id)
        query = {"id": query_id, "from": user, "message": message, "chat_instance": f"-{user_id}77",
                 "data": data}
        return self.push_update({"callback_query": query})

    def push_group_message(self, group_id: int, text: str, *, sender: dict[str, Any],
                           sender_chat: dict[str, Any] | None = None, **extra: Any) -> int:
        """A message in a group from any `from` (e.g. one of NOT_PEOPLE), with `sender_chat` when Telegram
        sends on behalf of a chat (anonymous admins, posts as a channel, a linked channel's auto-forward)."""
        body: dict[str, Any] = {"text": text, **extra}
        if entities := _command_entities(text):
            body["entities"] = entities
        if sender_chat is not None:
            body["sender_chat"] = sender_chat
        return self.push_update({"message": self.new_message(group_id, sender, body)})

    def push_update(self, raw: dict[str, Any]) -> int:
        """Queue any update (an update_id is assigned when missing); returns its update_id."""
        update = dict(raw)
        if "update_id" not in update:
            self._next_update_id += 1
            update["update_id"] = self._next_update_id
        self._update_log[update["update_id"]] = update
        self._pending.append(_Pending(update))
        self._notify()
        return int(update["update_id"])

    def redeliver(self, update_id: int) -> None:
        """Deliver an update again, as Telegram does when it believes the bot did not get it."""
        self._pending.append(_Pending(self._update_log[update_id], forced=True))
        self._notify()

    # --- what tests read ---------------------------------------------------------------------
    def messages(self, chat_id: int) -> list[SentMessage]:
        return [m for m in self.sent.get(chat_id, []) if not m.deleted]

    def texts(self, chat_id: int) -> list[str]:
        return [m.plain for m in self.messages(chat_id) if m.media_kind is None]

    def last_text(self, chat_id: int) -> str | None:
        texts = self.texts(chat_id)
        return texts[-1] if texts else None

    def media(self, chat_id: int, kind: str | None = None) -> list[SentMessage]:
        return [m for m in self.messages(chat_id) if m.media_kind and (kind is None or m.media_kind == kind)]

    def pending_updates(self) -> int:
        return len(self._pending)

    @property
    def downloads(self) -> list[Call]:
        """Requests of the file route (/file/bot<token>/<path>): what the bot downloaded."""
        return [c for c in self.calls if c.path.startswith("/file/")]

    def calls_of(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.path.lower().endswith("/" + method.lower())]

    async def wait_for(self, predicate: Callable[[], T], timeout: float = 5.0) -> T:  # noqa: ASYNC109
        """Wait until predicate() is truthy (re-checked on every API call or pushed update)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not (value := predicate()):
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"condition not met in {timeout}s; sent so far: {self.summary()}")
            await self.wait_change(remaining)
        return value

    async def wait_polling(self, polls: int = 1, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        await self.wait_for(lambda: self.polls >= polls, timeout)

    def summary(self) -> str:
        return "; ".join(f"{chat}: {[m.plain[:80] or m.media_kind for m in msgs]}"
                         for chat, msgs in self.sent.items()) or "nothing"

    # --- shared with the method handlers -----------------------------------------------------
    async def wait_change(self, timeout: float) -> None:  # noqa: ASYNC109 (a deadline, not a cancel)
        event = self._changed
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            pass

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def remember_user(self, user_id: int, first_name: str, language_code: str, username: str | None,
                      last_name: str | None) -> dict[str, Any]:
        user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name,
                                "language_code": language_code}
        if username:
            user["username"] = username
        if last_name:
            user["last_name"] = last_name
        self.users[user_id] = user
        return user

    def chat(self, chat_id: int) -> dict[str, Any]:
        if chat_id < 0:  # groups and supergroups have negative ids; here every one is a supergroup
            return {"id": chat_id, "type": "supergroup", "title": "A group"}
        user = self.users.get(chat_id, {"first_name": f"User {chat_id}"})
        chat = {"id": chat_id, "type": "private", "first_name": user["first_name"]}
        chat.update({k: user[k] for k in ("username", "last_name") if k in user})
        return chat

    def new_message(self, chat_id: int, sender: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
        self._next_message_id[chat_id] += 1
        message = {"message_id": self._next_message_id[chat_id], "from": sender, "chat": self.chat(chat_id),
                   "date": int(time.time()), **extra}
        self.chat_messages[chat_id][message["message_id"]] = message
        return message

    def _user_message(self, user: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
        return self.new_message(user["id"], user, extra)

    def store_file(self, data: bytes, folder: str, suffix: str, mime: str, filename: str = "") -> StoredFile:
        self._next_file += 1
        n = self._next_file
        stored = StoredFile(f"BQACAgIAAxkBAAI{n:06d}FakeFileId{self.port}", f"AgAD{n:06d}", data,
                            f"{folder}/file_{n}{suffix}", filename, mime)
        self.files[stored.file_id] = stored
        return stored

    def take_updates(self, offset: int, limit: int) -> list[dict[str, Any]]:
        """Confirm updates before `offset`, then hand out up to `limit` deliverable ones in id order."""
        if offset < 0:
            keep = self._pending[offset:]
            self._pending = keep
        elif offset > 0:
            self._pending = [p for p in self._pending if p.update["update_id"] >= offset or p.forced]
        allowed = set(self.allowed_updates) if self.allowed_updates else None
        self._pending = [p for p in self._pending
                         if (p.kind in allowed if allowed else p.kind not in _OPT_IN_UPDATES)]
        batch = sorted(self._pending, key=lambda p: p.update["update_id"])[:limit]
        for item in batch:
            item.deliveries += 1
            item.forced = False
            self.delivered[item.update["update_id"]] += 1
        return [item.update for item in batch]

    def drop_pending(self) -> None:
        self._pending.clear()

    def next_poll(self) -> int:
        self.polls += 1
        self._poll_generation += 1
        self._notify()  # an older long poll sees it was superseded
        return self._poll_generation

    def poll_superseded(self, generation: int) -> bool:
        return generation != self._poll_generation

    @property
    def closing(self) -> bool:
        return self._closing


def _error(exc: ApiError) -> web.Response:
    return respond(exc.code, exc.body())


def _mention_entities(text: str) -> list[dict[str, Any]]:
    """A "mention" entity for every @username in the text, at UTF-16 offsets as Telegram counts them."""
    return [{"type": "mention", "offset": len(text[:m.start()].encode("utf-16-le")) // 2,
             "length": len(m.group().encode("utf-16-le")) // 2} for m in re.finditer(r"@[A-Za-z0-9_]{5,32}", text)]


def _command_entities(text: str) -> list[dict[str, Any]]:
    if not text.startswith("/"):
        return []
    command = text.split(maxsplit=1)[0]
    return [{"type": "bot_command", "offset": 0, "length": len(command.encode("utf-16-le")) // 2}]


def _parse_params(request: web.Request, call: Call, files: dict[str, Upload]) -> dict[str, Any]:
    params: dict[str, Any] = dict(request.query)
    ctype = request.headers.get("Content-Type", "")
    if "json" in ctype and isinstance(call.json, dict):
        params.update(call.json)
    elif "x-www-form-urlencoded" in ctype:
        params.update(parse_qsl(call.body.decode(), keep_blank_values=True))
    elif "multipart/form-data" in ctype:
        params.update({k: v for k, v in call.form.items() if k not in files})
        params.update(files)
    elif call.body:
        try:
            body = json.loads(call.body)
        except ValueError:
            body = None
        if isinstance(body, dict):
            params.update(body)
    return params


async def _parse_files(request: web.Request, call: Call) -> dict[str, Upload]:
    """Uploaded files of a multipart body with their filenames (the base parser keeps bytes only)."""
    if "multipart/form-data" not in request.headers.get("Content-Type", ""):
        return {}
    from aiohttp import BodyPartReader, MultipartReader
    from aiohttp.streams import StreamReader

    stream = StreamReader(request.protocol, 2**16, loop=asyncio.get_running_loop())
    stream.feed_data(call.body)
    stream.feed_eof()
    reader = MultipartReader(request.headers, stream)
    files: dict[str, Upload] = {}
    while (part := await reader.next()) is not None:
        assert isinstance(part, BodyPartReader)
        data = bytes(await part.read(decode=False))
        if part.filename is not None:
            files[part.name or ""] = Upload(data, part.filename, part.headers.get("Content-Type", ""))
    return files
