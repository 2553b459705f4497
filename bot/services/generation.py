"""What users ask for, checked before anything is charged, then handed to the request's owner.

    chat / media: the label (the user's choice while it exists, else the file's first of the category),
    the input checked (empty, too long: nothing charged), then `RequestLife.serve` with the work that
    produces and delivers that kind of answer (`bot.services.answers`).
    chat_photo: a chat message with an image, for a label that can see (`vision`).
    voice: a voice message, transcribed then answered as chat; one request charged both labels' credits.

A chat message may come with a document (`bot.services.documents`): the model is sent the question and
the document's text (bounded by MAX_DOCUMENT_CHARS, apart from MAX_PROMPT_CHARS, which the question alone
must fit); the request log and the chat history keep the question with the file's name, not its text.
"""

from __future__ import annotations

from html import escape

from bot.i18n import Translate
from bot.services.answers import Answers, Ask
from bot.services.documents import Document
from bot.services.failures import category_name, credits_text
from bot.services.lifecycle import RequestLife
from bot.services.vision import remembered
from bot.settings import Settings
from db.repo.users import UserView
from providers import Catalogue, Category, ChatMessage, GenerationRequest, ImagePart, LabelConfig


class GenerationService:
    def __init__(self, settings: Settings, catalogue: Catalogue, answers: Answers, life: RequestLife) -> None:
        self.settings = settings
        self.catalogue = catalogue
        self.answers = answers
        self.life = life

    def label_for(self, user: UserView, category: Category) -> LabelConfig | None:
        return self.catalogue.for_user(user.label_for(str(category)), category)

    async def offered(self, ask: Ask, user: UserView, category: Category) -> LabelConfig | None:
        """The user's label of `category`; None after telling them the bot offers none of that kind."""
        label = self.label_for(user, category)
        if label is None:
            await ask.say(ask.t("errors.no_label", category=category_name(str(category), ask.t)))
        return label

    def invalid_input(self, prompt: str, t: Translate, usage_key: str) -> str | None:
        """Why the input cannot be sent (empty, too long), checked before anything is charged."""
        if not prompt.strip():
            return t(usage_key)
        if len(prompt) > self.settings.max_prompt_chars:
            return t("errors.too_long", length=len(prompt), limit=self.settings.max_prompt_chars)
        return None

    async def chat(self, ask: Ask, user: UserView, text: str, *, document: Document | None = None) -> None:
        label = await self.offered(ask, user, Category.TEXT)
        if label is None:
            return
        if problem := self.invalid_input(text, ask.t, "errors.empty"):
            await ask.say(problem)
            return
        prompt, content = (text, text) if document is None else (document.asked(text), document.prompt(text))
        request = GenerationRequest(Category.TEXT, prompt=prompt, messages=(ChatMessage("user", content),))
        # the conversation so far is read in the reservation's transaction, pruned to what fits
        await self.life.serve(ask, label, request, "text",
                              history_chars=max(0, self.settings.history_max_chars - len(text)))

    async def chat_photo(self, ask: Ask, user: UserView, question: str, image: ImagePart) -> None:
        """A photo with its question (the caption; none: "describe this image"): a chat message for the user's
        chat label when it can see, else for the first label that can, the user told which and at what price.
        The image travels by reference (its Telegram file id) and is fetched when the request runs; the
        history keeps the reference, not the bytes (bot.services.vision)."""
        chosen = await self.offered(ask, user, Category.TEXT)
        if chosen is None:
            return
        label = self.catalogue.seeing(chosen)
        if label is None:
            await ask.say(ask.t("chat.no_vision"))
            return
        question = question.strip() or ask.t("chat.photo_question")
        if problem := self.invalid_input(question, ask.t, "errors.empty"):
            await ask.say(problem)
            return
        request = GenerationRequest(Category.TEXT, prompt=remembered(question, image),
                                    messages=(ChatMessage("user", question, (image,)),))
        if label is not chosen:  # said before the reservation: it explains the other label's price
            if await self.life.refused_as_busy(ask, label, request):
                return
            await ask.say(ask.t("chat.vision_label", chosen=escape(chosen.name), label=escape(label.name),
                                credits=credits_text(label.credits, ask.t)))
        await self.life.serve(ask, label, request, "text",
                              history_chars=max(0, self.settings.history_max_chars - len(question)))

    async def voice(self, ask: Ask, user: UserView, request: GenerationRequest) -> None:
        """A voice or audio message (`request.audio`): transcribed with the user's transcription label, then
        answered as chat by their chat label; both labels' credits reserved together (RequestLife.serve).
        `request.prompt` is what the transcript follows in the question ("" in a private chat; in a group the
        sender's name, as every turn there is signed)."""
        transcriber = await self.offered(ask, user, Category.TRANSCRIPTION)
        label = await self.offered(ask, user, Category.TEXT) if transcriber is not None else None
        if transcriber is None or label is None:
            return
        await self.life.serve(ask, label, request, "voice", history_chars=self.settings.history_max_chars,
                              transcriber=transcriber)

    async def refused_as_busy(self, ask: Ask, user: UserView, request: GenerationRequest) -> bool:
        """True when the user was told to wait for their running request (see RequestLife.refused_as_busy)."""
        label = self.label_for(user, request.category)
        return label is not None and await self.life.refused_as_busy(ask, label, request)

    async def media(self, ask: Ask, user: UserView, request: GenerationRequest, usage_key: str) -> None:
        label = await self.offered(ask, user, request.category)
        if label is None:
            return
        if request.category is not Category.IMAGE_EDIT or request.prompt:  # most edits need no words
            if problem := self.invalid_input(request.prompt, ask.t, usage_key):
                await ask.say(problem)
                return
        await self.life.serve(ask, label, request, "media")
