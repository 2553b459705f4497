"""Documents users send, read as text to ask a question about: PDF, plain text, Markdown, source files.

    accepted(name, mime, size)   the kind of file, judged before anything is downloaded: an unsupported
                                 type or a file over MAX_DOCUMENT_BYTES is refused (`Refused`)
    read_document(data, ...)     its text: a PDF's pages with pypdf (refused: encrypted, over
                                 MAX_DOCUMENT_PAGES, no text layer, unreadable), a text file as UTF-8
                                 (or UTF-16/32 with a byte order mark; refused: binary, other encodings)

The text is cut to MAX_DOCUMENT_CHARS: its beginning is kept, and both the model (a line after the text)
and the user (`Cut.note`) are told how much of it was read. A refusal costs nothing: it comes before the
request is reserved. Reading is CPU work: the caller runs `read_document` in a thread.
"""

from __future__ import annotations

import codecs
import io
from dataclasses import dataclass
from html import escape
from pathlib import PurePath
from typing import TYPE_CHECKING, Any, Literal

from loguru import logger

if TYPE_CHECKING:
    from pypdf import PdfReader

Kind = Literal["pdf", "text"]

TEXT_SUFFIXES = frozenset({
    ".txt", ".text", ".md", ".markdown", ".rst", ".log", ".csv", ".tsv", ".json", ".jsonl", ".yaml", ".yml",
    ".toml", ".ini", ".cfg", ".conf", ".env", ".xml", ".html", ".htm", ".css", ".scss", ".svg", ".tex", ".sql",
    ".py", ".pyi", ".ipynb", ".js", ".mjs", ".cjs", ".ts", ".tsx", ".jsx", ".vue", ".svelte", ".go", ".rs",
    ".c", ".h", ".cc", ".cpp", ".cxx", ".hpp", ".hh", ".cs", ".java", ".kt", ".kts", ".scala", ".groovy",
    ".gradle", ".swift", ".m", ".mm", ".rb", ".php", ".pl", ".pm", ".lua", ".r", ".jl", ".dart", ".ex", ".exs",
    ".erl", ".hs", ".ml", ".clj", ".elm", ".fs", ".sh", ".bash", ".zsh", ".fish", ".ps1", ".bat", ".cmd",
    ".dockerfile", ".makefile", ".mk", ".cmake", ".proto", ".graphql", ".tf", ".nix", ".diff", ".patch",
})
TEXT_NAMES = frozenset({"dockerfile", "makefile", "readme", "license", "changelog", "gemfile", "procfile"})
TEXT_MIMES = frozenset({
    "application/json", "application/xml", "application/x-yaml", "application/yaml", "application/toml",
    "application/javascript", "application/x-javascript", "application/typescript", "application/sql",
    "application/x-sh", "application/x-shellscript", "application/x-python", "application/x-python-code",
    "application/x-httpd-php", "application/x-tex", "application/x-ndjson",
})
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


class Refused(Exception):
    """The document cannot be used; `key` and `params` are the message for the user (i18n)."""

    def __init__(self, key: str, **params: Any) -> None:
        super().__init__(key)
        self.key = key
        self.params = params


@dataclass(frozen=True, slots=True)
class Limits:
    max_bytes: int
    max_pages: int
    max_chars: int


@dataclass(frozen=True, slots=True)
class Document:
    """A document's text, cut to the limit; `total_chars` and `pages_read`/`pages` say how much that was."""

    name: str
    text: str
    total_chars: int  # of the text read (a PDF's reading stops at the first page past the limit)
    pages: int | None = None  # a PDF's page count
    pages_read: int | None = None

    @property
    def cut(self) -> bool:
        return len(self.text) < self.total_chars

    def asked(self, question: str) -> str:
        """The question as the request log and the chat history keep it: with the file's name, not its text."""
        return f"{question}\n[{self.name}]"

    def prompt(self, question: str) -> str:
        """What the model is sent: the question, then the document's text."""
        pages = f' pages="{self.pages}"' if self.pages is not None else ""
        cut = ""
        if self.cut:
            read = f" (pages 1-{self.pages_read} of {self.pages})" if self.pages is not None else ""
            cut = f"\n[The document was cut: only its first {len(self.text)} characters{read} are included.]"
        return (f'{question}\n\n<document name="{escape(self.name)}"{pages}>\n{self.text}\n</document>{cut}')


def kind_of(name: str | None, mime: str | None) -> Kind | None:
    path = PurePath((name or "").lower())
    mime = (mime or "").lower()
    if mime == "application/pdf" or path.suffix == ".pdf":
        return "pdf"
    if mime.startswith("image/"):
        return None  # an image is a photo to look at or edit, not text to read
    if mime.startswith("text/") or mime in TEXT_MIMES or path.suffix in TEXT_SUFFIXES or path.name in TEXT_NAMES:
        return "text"
    return None


def accepted(name: str | None, mime: str | None, size: int | None, limits: Limits) -> Kind:
    """The kind of a document Telegram announced, or Refused: judged before anything is downloaded."""
    kind = kind_of(name, mime)
    if kind is None:
        raise Refused("documents.unsupported")
    if size is not None and size > limits.max_bytes:
        raise Refused("documents.too_big", limit=_megabytes(limits.max_bytes))
    return kind


def read_document(data: bytes, kind: Kind, name: str, limits: Limits) -> Document:
    """The document's text within `limits`, or Refused with the reason."""
    if len(data) > limits.max_bytes:
        raise Refused("documents.too_big", limit=_megabytes(limits.max_bytes))
    if kind == "pdf":
        return _read_pdf(data, name, limits)
    text = _decode(data)
    if not text.strip():
        raise Refused("documents.empty")
    return Document(name, text[:limits.max_chars], len(text))


def _decode(data: bytes) -> str:
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError:
                break
    else:
        if b"\x00" not in data:
            try:
                return data.decode("utf-8")
            except UnicodeDecodeError:
                pass
    raise Refused("documents.not_text")


def _read_pdf(data: bytes, name: str, limits: Limits) -> Document:
    from pypdf import PdfReader  # here, not at start-up: 10 MB resident a bot that never sees a PDF saves

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not _opens_without_password(reader):
            raise Refused("documents.encrypted")
        pages = len(reader.pages)
        if pages > limits.max_pages:
            raise Refused("documents.too_many_pages", pages=pages, limit=limits.max_pages)
        texts: list[str] = []
        length = 0
        for page in reader.pages:  # stops at the first page past the limit: the rest would be cut anyway
            texts.append(page.extract_text() or "")
            length += len(texts[-1]) + 2
            if length > limits.max_chars:
                break
    except Refused:
        raise
    except Exception as exc:  # a malformed file can fail anywhere in the parser, with any error
        logger.info("PDF {!r} unreadable: {}: {}", name, type(exc).__name__, exc)
        raise Refused("documents.unreadable") from exc
    text = "\n\n".join(t.strip() for t in texts)
    if not text.strip():
        raise Refused("documents.no_text")
    return Document(name, text[:limits.max_chars], len(text), pages, len(texts))


def _opens_without_password(reader: PdfReader) -> bool:
    """True for a PDF locked only against editing (an owner password): its text can be read as is."""
    from pypdf import PasswordType

    try:
        return bool(reader.decrypt("") != PasswordType.NOT_DECRYPTED)
    except Exception:  # a cipher pypdf cannot run without an optional package counts as locked
        return False


def _megabytes(limit: int) -> str:
    return f"{limit / (1024 * 1024):.3g}"
