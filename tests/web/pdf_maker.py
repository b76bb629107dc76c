"""Small real PDFs for the documents tests, written with pypdf: a page per text, in Helvetica."""

from __future__ import annotations

import io

from pypdf import PdfWriter
from pypdf.generic import DictionaryObject, NameObject, StreamObject


def make_pdf(pages: list[list[str]], password: str | None = None) -> bytes:
    """A PDF with one page per entry, each line of it drawn as text (extractable by pypdf)."""
    writer = PdfWriter()
    font = DictionaryObject({NameObject("/Type"): NameObject("/Font"), NameObject("/Subtype"): NameObject("/Type1"),
                             NameObject("/BaseFont"): NameObject("/Helvetica")})
    font_ref = writer._add_object(font)
    for lines in pages:
        page = writer.add_blank_page(width=612, height=792)
        drawn = " ".join(f"({_escape(line)}) Tj 0 -16 Td" for line in lines)
        stream = StreamObject()
        stream.set_data(f"BT /F1 12 Tf 72 720 Td {drawn} ET".encode("latin-1"))
        page[NameObject("/Contents")] = writer._add_object(stream)
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/F1"): font_ref})})
    if password is not None:
        writer.encrypt(user_password=password, owner_password=password + "-owner", algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
