"""PDFs for tests, made with pypdf itself: pages with a text layer, pages without one, and encryption."""

from __future__ import annotations

import io

from pypdf import PdfWriter
from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def make_pdf(pages: list[str], *, user_password: str | None = None, owner_password: str | None = None) -> bytes:
    """One page per string, each line of it drawn in Helvetica (an empty string: a page with no text, as a
    scan has). `user_password`: opening needs it; `owner_password` alone: readable, editing locked."""
    writer = PdfWriter()
    font = DictionaryObject({NameObject("/Type"): NameObject("/Font"), NameObject("/Subtype"): NameObject("/Type1"),
                             NameObject("/BaseFont"): NameObject("/Helvetica")})
    for text in pages:
        page = writer.add_blank_page(612, 792)
        lines = [f"({_escape(line)}) Tj T*" for line in text.splitlines()]
        stream = DecodedStreamObject()
        stream.set_data(("BT /F1 12 Tf 14 TL 50 740 Td " + " ".join(lines) + " ET").encode("latin-1")
                        if lines else b"")
        page[NameObject("/Resources")] = DictionaryObject({
            NameObject("/Font"): DictionaryObject({NameObject("/F1"): font})})
        page.replace_contents(stream)
    if user_password is not None or owner_password is not None:
        writer.encrypt(user_password or "", owner_password, algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()
