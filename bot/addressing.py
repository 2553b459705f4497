"""Which group messages are for the bot, and what they ask once the bot's name is taken out.

In a group or supergroup the bot answers a message that

    - mentions it by its @username (in the text, or in the caption of a document or photo),
    - replies to one of its messages, or
    - is a command for it: `/cmd@this_bot`, or a bare `/cmd` that is one of its commands
      (`bot.commands.BOT_COMMANDS`). Telegram hands a bot with privacy mode both kinds, but a bare one
      names no bot and may be for any bot in the group; `/cmd@other_bot` is another bot's.

Everything else is conversation between members: `bot.middlewares.addressing` drops it before the flood
limit, the database session and the user upsert, so it costs no reply, no charge and no row. Private chats
are always addressed to the bot.

What a group message asks (`group_question`) is its text (a photo's caption) without the bot's name,
signed with the sender's name (`signature`: a group's conversation has many speakers), and with the
message it replies to quoted, so that "@bot translate this" in reply to a member's message has that
message to work on. A voice message's question is its transcript, signed alike.
"""

from __future__ import annotations

from aiogram.enums import ChatType
from aiogram.types import Message, MessageEntity, User

from bot.commands import BOT_COMMANDS

GROUP_CHATS = frozenset({ChatType.GROUP, ChatType.SUPERGROUP})
QUOTE_MAX = 1500  # characters of a replied-to message quoted in the question (the question must fit MAX_PROMPT_CHARS)


def _text_and_entities(message: Message) -> tuple[str, list[MessageEntity]]:
    if message.text is not None:
        return message.text, list(message.entities or ())
    return message.caption or "", list(message.caption_entities or ())


def _mentions(text: str, entities: list[MessageEntity], username: str) -> list[MessageEntity]:
    name = "@" + username.lower()
    return [e for e in entities if e.type == "mention" and e.extract_from(text).lower() == name]


def _command_for(text: str, entities: list[MessageEntity], username: str) -> bool | None:
    """True: a command for this bot; False: for another bot (or a bare one that is not ours); None: not
    a command."""
    command = next((e for e in entities if e.type == "bot_command" and e.offset == 0), None)
    if command is None:
        return None
    name, at, target = command.extract_from(text).lstrip("/").partition("@")
    # case as written: aiogram's Command filters match it exactly, so "/Start" would reach no handler
    return target.lower() == username.lower() if at else name in BOT_COMMANDS


def _replies_to(message: Message, me: User) -> bool:
    replied = message.reply_to_message
    # in a forum every message of a topic "replies" to the topic's first message: that is no reply to the bot
    return replied is not None and replied.forum_topic_created is None \
        and replied.from_user is not None and replied.from_user.id == me.id


def addressed_to(message: Message, me: User) -> bool:
    """Whether the bot (`me`, from getMe) should answer this message."""
    if message.chat.type not in GROUP_CHATS:
        return True
    text, entities = _text_and_entities(message)
    username = me.username or ""
    command = _command_for(text, entities, username)
    if command is not None:
        return command
    return bool(username and _mentions(text, entities, username)) or _replies_to(message, me)


def without_mentions(message: Message, me: User) -> str:
    """The message's text (or caption) with the bot's @username taken out, trimmed."""
    text, entities = _text_and_entities(message)
    if not me.username:
        return text.strip()
    encoded = text.encode("utf-16-le")  # entity offsets count UTF-16 code units
    space = " ".encode("utf-16-le")
    for mention in sorted(_mentions(text, entities, me.username), key=lambda e: e.offset, reverse=True):
        start, end = mention.offset * 2, (mention.offset + mention.length) * 2
        if encoded[start - 2:start] == space:  # "Hey @bot, look" reads "Hey, look"
            start -= 2
        elif encoded[end:end + 2] == space:
            end += 2
        encoded = encoded[:start] + encoded[end:]
    return encoded.decode("utf-16-le").strip()


def signature(message: Message) -> str:
    """How a turn said in a group is signed, so that the model can tell its speakers apart: "Name:"."""
    return f"{message.from_user.full_name if message.from_user else '?'}:"


def group_question(message: Message, me: User, default: str = "") -> str:
    """The question of a group message as the model reads it (see the module docstring); "" when it asks
    nothing and quotes nothing."""
    asked = without_mentions(message, me) or default
    replied = message.reply_to_message
    quoted = ""
    if replied is not None and replied.forum_topic_created is None and not _replies_to(message, me):
        quoted = (replied.text or replied.caption or "").strip()  # the bot's own is in the conversation already
    if not asked and not quoted:
        return ""
    said = f"{signature(message)} {asked}" if asked else signature(message)
    if not quoted:
        return said
    author = replied.from_user.full_name if replied is not None and replied.from_user else "?"
    if len(quoted) > QUOTE_MAX:
        quoted = quoted[:QUOTE_MAX] + "…"
    return f"{said}\n[in reply to {author}: {quoted}]"
