"""Media methods of the fake Bot API: uploads are stored (bytes, filename, caption) and answered with real
PhotoSize / Video / Voice / Audio / Document objects whose file ids `getFile` and the file route know."""

from __future__ import annotations

import mimetypes
from typing import TYPE_CHECKING, Any

from tests.fakes.telegram_methods import (
    UPLOAD_LIMIT,
    Params,
    Upload,
    api,
    chat_id_of,
    ensure_image,
    record_sent,
)
from tests.fakes.telegram_state import ApiError, StoredFile, bad_request, check_text

if TYPE_CHECKING:
    from tests.fakes.telegram import FakeTelegram

# field -> (folder, suffix, default mime) as Telegram files are laid out behind getFile
_LAYOUT = {"photo": ("photos", ".jpg", "image/jpeg"), "video": ("videos", ".mp4", "video/mp4"),
           "voice": ("voice", ".oga", "audio/ogg"), "audio": ("music", ".mp3", "audio/mpeg"),
           "document": ("documents", "", "application/octet-stream"),
           "animation": ("animations", ".mp4", "video/mp4")}


def resolve_media(fake: FakeTelegram, p: Params, field: str, value: Any) -> StoredFile:
    """An upload (`attach://name` or the field itself), or a file id the fake already has."""
    if isinstance(value, str) and value.startswith("attach://"):
        value = p.raw.get(value.removeprefix("attach://"))
        if not isinstance(value, Upload):
            raise bad_request(f"there is no {field} in the request")
    if value is None or value == "":
        raise bad_request(f"there is no {field} in the request")
    if isinstance(value, Upload):
        return _store_upload(fake, field, value)
    if str(value).startswith(("http://", "https://")):
        raise bad_request("failed to get HTTP URL content")  # what Telegram says when it cannot fetch it
    stored = fake.files.get(str(value))
    if stored is None:
        raise bad_request("wrong file identifier/HTTP URL specified")
    return stored


def _store_upload(fake: FakeTelegram, field: str, upload: Upload) -> StoredFile:
    if not upload.data:
        raise bad_request("file must be non-empty")
    if len(upload.data) > UPLOAD_LIMIT:
        raise ApiError(413, "Request Entity Too Large")
    folder, suffix, default_mime = _LAYOUT[field]
    guessed = mimetypes.guess_type(upload.filename)[0]
    content_type = upload.content_type if upload.content_type not in ("", "application/octet-stream") else ""
    mime = content_type or guessed or default_mime
    if field == "photo":
        ensure_image(fake, upload.data)
        mime = "image/jpeg"  # Telegram re-encodes photos as JPEG
    return fake.store_file(upload.data, folder, suffix, mime, upload.filename)


def media_object(fake: FakeTelegram, field: str, stored: StoredFile, p: Params) -> Any:
    ids = {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id, "file_size": len(stored.data)}
    if field == "photo":
        width, height = ensure_image(fake, stored.data)
        return [{**ids, "width": width, "height": height}]
    duration = p.get_int("duration", 0) or 0
    if field == "voice":
        return {**ids, "duration": duration, "mime_type": stored.mime_type}
    named = {**ids, "file_name": stored.filename or stored.file_path.rsplit("/", 1)[-1],
             "mime_type": stored.mime_type}
    if field in ("video", "animation"):
        width, height = p.get_int("width", 0) or 0, p.get_int("height", 0) or 0
        return {**named, "width": width, "height": height, "duration": duration}
    if field == "audio":
        extra = {k: p.get_str(k) for k in ("title", "performer") if p.get_str(k)}
        return {**named, "duration": duration, **extra}
    return named


async def _send_media(fake: FakeTelegram, p: Params, field: str, method: str) -> Any:
    chat_id = chat_id_of(fake, p)
    raw_caption = p.get_str("caption")
    caption, entities = check_text(raw_caption or "", p.get_str("parse_mode"), caption=True)
    stored = resolve_media(fake, p, field, p.raw.get(field))
    extra: dict[str, Any] = {field: media_object(fake, field, stored, p)}
    if caption:
        extra["caption"] = caption
    if entities:
        extra["caption_entities"] = entities
    return record_sent(fake, chat_id, method, extra, p, raw_caption, entities=entities, media_kind=field,
                       file=stored)


def _register(field: str) -> None:
    method = "send" + field.capitalize()

    async def handler(fake: FakeTelegram, p: Params) -> Any:
        return await _send_media(fake, p, field, method)

    api(method)(handler)


for _field in _LAYOUT:
    _register(_field)


@api("sendMediaGroup")
async def send_media_group(fake: FakeTelegram, p: Params) -> Any:
    chat_id = chat_id_of(fake, p)
    media = p.get_json("media")
    if not isinstance(media, list) or not 2 <= len(media) <= 10:
        raise bad_request("wrong number of messages in the media group")  # must hold 2-10 items
    group_id = f"1{len(fake.sent.get(chat_id, [])):05d}{fake.port}"
    messages = []
    for item in media:
        field = str(item.get("type", ""))
        if field not in ("photo", "video", "audio", "document"):
            raise bad_request("invalid media type in the media group")
        item_params = Params({**p.raw, **item})
        raw_caption = item.get("caption")
        caption, entities = check_text(raw_caption or "", item.get("parse_mode"), caption=True)
        stored = resolve_media(fake, item_params, field, item.get("media"))
        extra: dict[str, Any] = {field: media_object(fake, field, stored, item_params), "media_group_id": group_id}
        if caption:
            extra["caption"] = caption
        if entities:
            extra["caption_entities"] = entities
        messages.append(record_sent(fake, chat_id, "sendMediaGroup", extra, Params({}), raw_caption,
                                    entities=entities, media_kind=field, file=stored))
    return messages
