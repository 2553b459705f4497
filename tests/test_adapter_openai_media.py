"""OpenAI-style images (generations, edits), speech and transcription against the loopback fake."""

from __future__ import annotations

import httpx
import pytest

from providers.adapters.openai_compat import ADAPTER_CLASSES, OpenAICompatAdapter
from providers.adapters.openai_media import sniff_image_mime
from providers.base import CallContext
from providers.errors import ErrorKind, ProviderError
from providers.types import Category, EditOp, GenerationRequest, Usage
from tests.adapter_support import adapter_config, fake_fixture
from tests.fakes.openai import MP3_BYTES, PNG_1X1, FakeOpenAI, openai_error

CTX = CallContext(timeout_s=5.0)


fake = fake_fixture(FakeOpenAI)


def make(fake: FakeOpenAI, http: httpx.AsyncClient) -> OpenAICompatAdapter:
    kind = fake.dialect
    config = adapter_config(kind, fake.url, "test-key", "K")
    return ADAPTER_CLASSES[kind](config, http)


def image(prompt: str = "a red fox", **options: object) -> GenerationRequest:
    return GenerationRequest(Category.IMAGE, prompt=prompt, options=options)


async def test_gpt_image_is_b64_and_gets_no_response_format(fake: FakeOpenAI, http: httpx.AsyncClient) -> None:
    result = await make(fake, http).generate(image(size="1024x1024"), "gpt-image-1", CTX)
    [call] = fake.calls
    assert (call.path, call.headers["Authorization"]) == ("/images/generations", "Bearer test-key")
    assert call.json == {"model": "gpt-image-1", "prompt": "a red fox", "n": 1, "size": "1024x1024"}
    [media] = result.media
    assert (media.data, media.mime, media.url) == (PNG_1X1, "image/png", None)
    assert result.usage == Usage(images=1) and result.model == "gpt-image-1"


async def test_dall_e_asks_for_b64_unless_a_url_is_wanted(fake: FakeOpenAI, http: httpx.AsyncClient) -> None:
    await make(fake, http).generate(image(), "dall-e-3", CTX)
    assert fake.calls[-1].json["response_format"] == "b64_json"
    result = await make(fake, http).generate(image(response_format="url"), "dall-e-2", CTX)
    assert fake.calls[-1].json == {"model": "dall-e-2", "prompt": "a red fox", "n": 1, "response_format": "url"}
    [media] = result.media
    assert media.data is None and media.mime == "image/png" and media.url and media.url.startswith(fake.url)
    downloaded = await http.get(media.url)  # the URL is real: the fake serves it
    assert downloaded.content == PNG_1X1


async def test_url_answer_from_an_openai_compatible_service(http: httpx.AsyncClient) -> None:
    async with FakeOpenAI("xai") as fake:
        result = await make(fake, http).generate(image(), "grok-2-image", CTX)
    assert "response_format" not in fake.calls[0].json
    assert result.media[0].url == f"{fake.url}/files/img-1.png"


@pytest.mark.parametrize("b64", ["!!not base64!!", "", "iVBORw0KGgo"])
async def test_bad_base64_is_invalid_response(fake: FakeOpenAI, http: httpx.AsyncClient, b64: str) -> None:
    fake.image_b64 = b64
    with pytest.raises(ProviderError) as caught:
        await make(fake, http).generate(image(), "gpt-image-1", CTX)
    assert caught.value.kind is ErrorKind.INVALID_RESPONSE


@pytest.mark.parametrize("body", [{"created": 1, "data": []}, {"data": [{"revised_prompt": "x"}]}, {"images": []},
                                  "not json"])
async def test_image_answers_without_images_are_invalid_response(fake: FakeOpenAI, http: httpx.AsyncClient,
                                                                 body: object) -> None:
    fake.fail_next(200, body)
    with pytest.raises(ProviderError) as caught:
        await make(fake, http).generate(image(), "gpt-image-1", CTX)
    assert caught.value.kind is ErrorKind.INVALID_RESPONSE


async def test_image_moderation_is_content_policy(fake: FakeOpenAI, http: httpx.AsyncClient) -> None:
    fake.fail_next(400, openai_error("Your request was rejected as a result of our safety system.",
                                     "image_generation_user_error", "content_policy_violation"))
    with pytest.raises(ProviderError) as caught:
        await make(fake, http).generate(image(), "gpt-image-1", CTX)
    assert caught.value.kind is ErrorKind.CONTENT_POLICY


def test_image_mime_is_sniffed() -> None:
    jpeg = b"\xff\xd8\xff\xe0" + bytes(10)
    webp = b"RIFF\x00\x00\x00\x00WEBPVP8 "
    assert [sniff_image_mime(d) for d in (PNG_1X1, jpeg, webp)] == ["image/png", "image/jpeg", "image/webp"]


async def test_edit_sends_multipart_with_image_mask_prompt_and_model(fake: FakeOpenAI, http: httpx.AsyncClient) -> None:
    source, mask = b"\xff\xd8\xff source jpeg", PNG_1X1
    request = GenerationRequest(Category.IMAGE_EDIT, prompt="add a hat", image=source, image_mime="image/jpeg",
                                mask=mask, options={"size": "512x512"})
    result = await make(fake, http).generate(request, "gpt-image-1", CTX)
    [call] = fake.calls
    assert call.path == "/images/edits" and call.headers["Content-Type"].startswith("multipart/form-data")
    assert call.form == {"image": source, "mask": mask, "prompt": "add a hat", "model": "gpt-image-1",
                         "size": "512x512"}
    assert result.media[0].data == PNG_1X1 and result.usage == Usage(images=1)


async def test_edit_without_a_mask_or_image(fake: FakeOpenAI, http: httpx.AsyncClient) -> None:
    request = GenerationRequest(Category.IMAGE_EDIT, prompt="brighter", image=PNG_1X1)
    result = await make(fake, http).generate(request, "dall-e-2", CTX)
    assert set(fake.calls[0].form) == {"image", "prompt", "model"} and result.media[0].url
    with pytest.raises(ProviderError) as caught:
        await make(fake, http).generate(GenerationRequest(Category.IMAGE_EDIT, prompt="x"), "dall-e-2", CTX)
    assert caught.value.kind is ErrorKind.BAD_REQUEST and len(fake.calls) == 1


async def test_speech_returns_the_audio_bytes(fake: FakeOpenAI, http: httpx.AsyncClient) -> None:
    request = GenerationRequest(Category.AUDIO, prompt="Hello, world")
    result = await make(fake, http).generate(request, "gpt-4o-mini-tts", CTX)
    assert fake.calls[0].path == "/audio/speech"
    assert fake.calls[0].json == {"model": "gpt-4o-mini-tts", "input": "Hello, world", "voice": "alloy",
                                  "response_format": "mp3"}
    [media] = result.media
    assert (media.data, media.mime) == (MP3_BYTES, "audio/mpeg")
    assert result.usage == Usage(characters=12)


async def test_speech_options_are_passed_on(fake: FakeOpenAI, http: httpx.AsyncClient) -> None:
    request = GenerationRequest(Category.AUDIO, prompt="hi", options={"voice": "nova", "speed": 1.25})
    await make(fake, http).generate(request, "tts-1", CTX)
    assert fake.calls[0].json["voice"] == "nova" and fake.calls[0].json["speed"] == 1.25


@pytest.mark.parametrize(("content", "ctype"), [(b"", "audio/mpeg"), (b'{"ok": true}', "application/json"),
                                                (b'{"error": null}', "audio/mpeg")])
async def test_speech_that_is_not_audio_is_invalid_response(fake: FakeOpenAI, http: httpx.AsyncClient,
                                                            content: bytes, ctype: str) -> None:
    fake.speech_bytes, fake.speech_content_type = content, ctype
    with pytest.raises(ProviderError) as caught:
        await make(fake, http).generate(GenerationRequest(Category.AUDIO, prompt="hi"), "tts-1", CTX)
    assert caught.value.kind is ErrorKind.INVALID_RESPONSE


def voice(audio: bytes = b"OggS fake voice note", mime: str = "audio/ogg", **options: object) -> GenerationRequest:
    return GenerationRequest(Category.TRANSCRIPTION, audio=audio, audio_mime=mime, audio_seconds=7.0,
                             options=options)


async def test_transcription_is_multipart_with_a_file_name_the_api_reads(fake: FakeOpenAI,
                                                                         http: httpx.AsyncClient) -> None:
    result = await make(fake, http).generate(voice(language="ru"), "whisper-1", CTX)
    [call] = fake.calls
    assert call.path == "/audio/transcriptions" and call.headers["Content-Type"].startswith("multipart/form-data")
    assert call.form == {"file": b"OggS fake voice note", "model": "whisper-1", "response_format": "json",
                         "language": "ru"}
    assert call.filenames == {"file": "audio.ogg"}  # the API goes by the extension: never Telegram's .oga
    assert result.text == fake.transcript and result.usage == Usage(seconds=7.0) and result.model == "whisper-1"


async def test_groq_transcribes_too(http: httpx.AsyncClient) -> None:
    async with FakeOpenAI("groq") as fake:
        result = await make(fake, http).generate(voice(b"ID3 mp3", "audio/mpeg"), "whisper-large-v3-turbo", CTX)
    assert fake.calls[0].filenames == {"file": "audio.mp3"} and result.text == fake.transcript


async def test_transcription_errors_are_classified(fake: FakeOpenAI, http: httpx.AsyncClient) -> None:
    fake.fail_next(429, openai_error("You exceeded your current quota", "insufficient_quota", "insufficient_quota"))
    with pytest.raises(ProviderError) as quota:
        await make(fake, http).generate(voice(), "whisper-1", CTX)
    fake.fail_next(200, {"task": "transcribe"})
    with pytest.raises(ProviderError) as shapeless:
        await make(fake, http).generate(voice(), "whisper-1", CTX)
    assert quota.value.kind is ErrorKind.QUOTA_EXHAUSTED and shapeless.value.kind is ErrorKind.INVALID_RESPONSE


def test_formats_the_transcription_endpoint_cannot_read_are_not_supported(http: httpx.AsyncClient) -> None:
    adapter = make(FakeOpenAI(), http)
    assert adapter.supports(voice(mime="audio/ogg; codecs=opus"), "whisper-1")
    assert adapter.supports(voice(mime="audio/x-ms-wma"), "whisper-1").reason == "cannot read audio/x-ms-wma"
    xai = ADAPTER_CLASSES["xai"](adapter_config("xai", "http://127.0.0.1:9", "k", "K"), http)
    assert xai.supports(voice(), "grok").reason == "does not serve transcription"


def edit(op: EditOp, prompt: str = "", search: str | None = None) -> GenerationRequest:
    return GenerationRequest(Category.IMAGE_EDIT, prompt=prompt, image=PNG_1X1, edit_op=op, search_prompt=search)


async def test_an_instruction_edit_sends_the_instruction_as_the_prompt(fake: FakeOpenAI,
                                                                      http: httpx.AsyncClient) -> None:
    result = await make(fake, http).generate(edit(EditOp.INSTRUCT, "make the sky purple"), "gpt-image-1", CTX)
    assert fake.calls[0].form == {"image": PNG_1X1, "prompt": "make the sky purple", "model": "gpt-image-1"}
    assert result.media[0].data == PNG_1X1


async def test_operations_become_instructions(fake: FakeOpenAI, http: httpx.AsyncClient) -> None:
    adapter = make(fake, http)
    await adapter.generate(edit(EditOp.SEARCH_REPLACE, "a dog", "the cat"), "gpt-image-1", CTX)
    await adapter.generate(edit(EditOp.REMOVE_BACKGROUND), "gpt-image-1", CTX)
    swap, cutout = (c.form for c in fake.calls)
    assert swap["prompt"] == "Replace the cat with a dog. Keep everything else unchanged." and "background" not in swap
    assert cutout["background"] == "transparent" and "Remove the background" in cutout["prompt"]


def test_what_an_openai_edit_model_can_do(http: httpx.AsyncClient) -> None:
    adapter = make(FakeOpenAI(), http)
    gpt = {op for op in EditOp if adapter.supports(edit(op), "gpt-image-1")}
    assert gpt == {EditOp.INSTRUCT, EditOp.SEARCH_REPLACE, EditOp.INPAINT, EditOp.REMOVE_BACKGROUND}
    assert {op for op in EditOp if adapter.supports(edit(op), "dall-e-2")} == {EditOp.INPAINT}
    assert adapter.supports(edit(EditOp.UPSCALE), "gpt-image-1").reason == "cannot do the upscale edit"
    narrowed = ADAPTER_CLASSES["openai"](adapter_config("openai", "http://127.0.0.1:9", "k", "K",
                                                        options={"edit_ops": ["instruct"]}), http)
    assert {op for op in EditOp if narrowed.supports(edit(op), "gpt-image-1")} == {EditOp.INSTRUCT}


async def test_media_hang_is_unavailable(fake: FakeOpenAI, http: httpx.AsyncClient) -> None:
    fake.hang = True
    with pytest.raises(ProviderError) as caught:
        await make(fake, http).generate(image(), "gpt-image-1", CallContext(timeout_s=0.2))
    assert caught.value.kind is ErrorKind.UNAVAILABLE

