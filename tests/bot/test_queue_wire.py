"""A Job crosses the queue as JSON and comes back the same: images by reference (or bytes), a voice
message's recording and its transcription label, and the forum topic it was asked in included."""

from __future__ import annotations

import json

import pytest

from bot.queue import Job
from providers import Category, ChatMessage, EditOp, GenerationRequest, ImagePart


def through_the_queue(job: Job) -> Job:
    return Job.from_wire(json.loads(json.dumps(job.to_wire())))


def test_a_chat_with_images_keeps_references_and_bytes() -> None:
    messages = (ChatMessage("user", "what is it?", (ImagePart("image/jpeg", ref="AgACAgI-ref_1"),)),
                ChatMessage("assistant", "A cat."),
                ChatMessage("user", "and this?", (ImagePart("image/png", b"\x89PNG", "AgAC-2"),)))
    job = Job(7, 1, 1, "en", "Eyes", "text", GenerationRequest(Category.TEXT, prompt="and this?", messages=messages))
    assert through_the_queue(job) == job


def test_a_voice_message_keeps_its_recording_and_transcription_label() -> None:
    request = GenerationRequest(Category.TEXT, audio=b"OggS\x00voice", audio_mime="audio/ogg", audio_seconds=12.5,
                                messages=(ChatMessage("user", "earlier"),))
    job = Job(8, 1, 1, "ru", "Fast chat", "voice", request, reply_to=5, update_id=9, transcriber="Transcription")
    assert through_the_queue(job) == job


def test_a_job_asked_in_a_forum_topic_keeps_its_topic() -> None:
    request = GenerationRequest(Category.TEXT, prompt="Alice: hi", messages=(ChatMessage("user", "Alice: hi"),))
    job = Job(10, 3001, -100_600, "en", "Fast chat", "text", request, reply_to=4, update_id=11, thread_id=7)
    back = through_the_queue(job)
    assert back == job and back.thread_id == 7
    assert Job.from_wire(job.to_wire() | {"thread_id": None}).thread_id is None  # the group's main chat


def test_an_instruction_edit_and_an_unknown_work() -> None:
    edit = GenerationRequest(Category.IMAGE_EDIT, prompt="make it night", image=b"img", edit_op=EditOp.INSTRUCT)
    job = Job(9, 1, 1, "en", "Photo edit", "media", edit)
    assert through_the_queue(job) == job
    wire = job.to_wire() | {"work": "dance"}
    with pytest.raises(ValueError, match="unknown work"):
        Job.from_wire(wire)
