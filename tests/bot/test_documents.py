"""Documents as context for a question: what is read, what is refused (before anything is charged), how
a long text is cut; then the handler through the real dispatcher (CoreHarness): the document's text in
the provider's prompt, the caption as the question, refusals with no charge and no request row."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.services.documents import Limits, Refused, accepted, kind_of, read_document
from tests.bot.core_harness import FIRST_REPLY, CoreHarness
from tests.support.pdfs import make_pdf

LIMITS = Limits(max_bytes=100_000, max_pages=5, max_chars=1_000)
USER = 4001


def _refusal(data: bytes, kind: str = "pdf", limits: Limits = LIMITS) -> str:
    with pytest.raises(Refused) as refused:
        read_document(data, kind, "f", limits)  # type: ignore[arg-type]
    return refused.value.key


@pytest.mark.parametrize(("name", "mime", "kind"), [
    ("report.pdf", "application/pdf", "pdf"), ("scan.PDF", None, "pdf"), ("notes.md", None, "text"),
    ("notes.txt", "text/plain", "text"), ("main.py", "text/x-python", "text"), ("app.ts", "video/mp2t", "text"),
    ("data.json", "application/json", "text"), ("Dockerfile", None, "text"), ("photo.png", "image/png", None),
    ("book.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", None),
    ("archive.zip", "application/zip", None), (None, None, None),
])
def test_the_kind_of_file_is_told_by_its_type_or_name(name: str | None, mime: str | None, kind: str | None) -> None:
    assert kind_of(name, mime) == kind


def test_an_unsupported_or_too_large_file_is_refused_before_download() -> None:
    with pytest.raises(Refused, match=r"documents\.unsupported"):
        accepted("book.docx", "application/msword", 10, LIMITS)
    with pytest.raises(Refused, match=r"documents\.too_big"):
        accepted("big.pdf", "application/pdf", LIMITS.max_bytes + 1, LIMITS)
    assert accepted("small.md", None, None, LIMITS) == "text"  # no size announced: the download is capped


def test_a_pdfs_pages_are_read_in_order() -> None:
    document = read_document(make_pdf(["Page one text", "", "Page three text"]), "pdf", "r.pdf", LIMITS)
    assert "Page one text" in document.text and document.text.index("one") < document.text.index("three")
    assert (document.pages, document.pages_read, document.cut) == (3, 3, False)
    prompt = document.prompt("What is on page three?")
    assert prompt.startswith("What is on page three?\n\n<document name=\"r.pdf\" pages=\"3\">")
    assert document.asked("Q?") == "Q?\n[r.pdf]"  # what the log and the history keep: no document text


def test_pdfs_that_cannot_be_read_are_refused_with_the_reason() -> None:
    assert _refusal(make_pdf(["secret"], user_password="pw")) == "documents.encrypted"
    assert _refusal(make_pdf(["", ""])) == "documents.no_text"  # a scan: pages without a text layer
    assert _refusal(make_pdf(["x"] * 6)) == "documents.too_many_pages"
    assert _refusal(b"%PDF-1.7\nthis is not really a pdf") == "documents.unreadable"
    assert _refusal(b"x" * (LIMITS.max_bytes + 1)) == "documents.too_big"


def test_a_pdf_locked_only_against_editing_is_read() -> None:
    document = read_document(make_pdf(["readable text"], owner_password="owner"), "pdf", "o.pdf", LIMITS)
    assert "readable text" in document.text


def test_text_files_are_utf8_or_marked_unicode_and_nothing_else() -> None:
    assert read_document("# Заголовок\nтекст".encode(), "text", "a.md", LIMITS).text == "# Заголовок\nтекст"
    assert read_document("hi".encode("utf-16"), "text", "a.txt", LIMITS).text == "hi"
    assert read_document(b"\xef\xbb\xbfbom", "text", "a.txt", LIMITS).text == "bom"
    assert _refusal("привет".encode("cp1251"), "text") == "documents.not_text"
    assert _refusal(b"ELF\x00\x01binary", "text") == "documents.not_text"
    assert _refusal(b"  \n ", "text") == "documents.empty"


def test_a_long_text_keeps_its_beginning_and_says_it_was_cut() -> None:
    document = read_document(("a" * 600 + "b" * 600).encode(), "text", "long.txt", LIMITS)
    assert document.text == "a" * 600 + "b" * 400 and document.total_chars == 1200 and document.cut
    assert document.prompt("Q").endswith("[The document was cut: only its first 1000 characters are included.]")
    pdf = read_document(make_pdf(["x" * 700, "y" * 700, "z" * 700]), "pdf", "p.pdf", LIMITS)
    assert pdf.cut and (pdf.pages, pdf.pages_read) == (3, 2)  # the third page was never extracted
    assert "(pages 1-2 of 3)" in pdf.prompt("Q")


# --- through the dispatcher -----------------------------------------------------------------------
@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[CoreHarness]:
    async with CoreHarness.start(tmp_path, max_document_chars=2_000, max_document_pages=10) as harness:
        yield harness


async def test_a_pdf_question_is_answered_with_the_pdfs_text_in_the_prompt(h: CoreHarness) -> None:
    pdf = make_pdf(["The launch code is AZURE-42.", "Second page mentions penguins."])
    await h.feed(h.tg.push_document(USER, pdf, "plan.pdf", "application/pdf", "What is the launch code?"))
    assert h.tg.last_text(USER) == FIRST_REPLY
    [call] = h.first.calls_to("/chat/completions")
    prompt = call.json["messages"][-1]["content"]
    assert prompt.startswith("What is the launch code?") and "AZURE-42" in prompt and "penguins" in prompt
    [request] = h.requests(USER)
    assert request["status"] == "served" and request["prompt"] == "What is the launch code?\n[plan.pdf]"
    assert h.credits(USER) == h.settings.free_credits - 1


async def test_a_document_without_a_caption_is_summarized(h: CoreHarness) -> None:
    await h.feed(h.tg.push_document(USER, b"def f():\n    return 1\n", "f.py"))
    [call] = h.first.calls_to("/chat/completions")
    assert call.json["messages"][-1]["content"].startswith("Summarize this document.")


async def test_refused_documents_cost_nothing_and_leave_no_request(h: CoreHarness) -> None:
    await h.say(USER, "/start")
    refusals = [
        (make_pdf(["secret"], user_password="pw"), "locked.pdf", "application/pdf", "password"),
        (make_pdf(["", ""]), "scan.pdf", "application/pdf", "scan"),
        (b"PK\x03\x04zip", "a.zip", "application/zip", "PDF, plain text"),
        (make_pdf(["page"] * 11), "long.pdf", "application/pdf", "11 pages"),
    ]
    for data, name, mime, said in refusals:
        await h.feed(h.tg.push_document(USER, data, name, mime, "what is in it?"))
        assert said in (h.tg.last_text(USER) or "") and "Nothing was charged" in (h.tg.last_text(USER) or "")
    assert h.requests(USER) == [] and h.credits(USER) == h.settings.free_credits
    assert h.first.calls_to("/chat/completions") == []


async def test_a_long_document_is_cut_and_the_user_told(h: CoreHarness) -> None:
    await h.feed(h.tg.push_document(USER, ("word " * 1000).encode(), "long.txt", "text/plain", "Count"))
    texts = h.tg.texts(USER)
    assert texts[-2] == "✂️ The document is long: I read its first 2000 characters." and texts[-1] == FIRST_REPLY


async def test_in_a_group_a_document_is_read_only_when_the_caption_names_the_bot(h: CoreHarness) -> None:
    group = -100700
    await h.feed(h.tg.push_document(USER, b"group notes", "n.txt", "text/plain", "for the team", group_id=group))
    assert h.tg.messages(group) == []
    await h.feed(h.tg.push_document(USER, b"group notes", "n.txt", "text/plain", "@fake_ai_bot sum up",
                                    group_id=group))
    assert [m.plain for m in h.tg.messages(group)] == [FIRST_REPLY]
    [call] = h.first.calls_to("/chat/completions")
    assert call.json["messages"][-1]["content"].startswith("Tester: sum up\n\n<document name=\"n.txt\">")
