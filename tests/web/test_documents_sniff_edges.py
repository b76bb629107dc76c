"""Sniffing edge cases around the PDF magic: only a file that starts with it, or a binary file with a little
junk before it, is a PDF; text that merely mentions it stays text."""

from __future__ import annotations

from ember.web.documents.sniff import PDF, TEXT, sniff
from tests.web.pdf_maker import make_pdf


def test_text_that_mentions_the_pdf_magic_is_text() -> None:
    note = b"File formats\n\nA PDF file begins with the bytes %PDF-1.7 and ends with %%EOF.\n"
    assert sniff(note, "formats.txt") == TEXT


def test_a_pdf_after_binary_junk_is_still_a_pdf() -> None:
    assert sniff(b"\x00\xff\xfe junk\n" + make_pdf([["x"]]), "scan.bin") == PDF


def test_a_pdf_after_leading_whitespace_is_a_pdf() -> None:
    assert sniff(b"\r\n  " + make_pdf([["x"]]), "doc.pdf") == PDF
