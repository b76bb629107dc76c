"""Sniffing, parsing and chunking of uploads: the pure parts of the documents feature, on real bytes (PDFs
made with pypdf)."""

from __future__ import annotations

import pytest

from ember.errors import UnreadableDocument, UnsupportedMediaType
from ember.web.documents.chunk import chunk_text
from ember.web.documents.parse import extract_text, html_text
from ember.web.documents.sniff import HTML, MARKDOWN, PDF, TEXT, sniff
from ember.web.documents.upload import clean_name
from tests.web.pdf_maker import make_pdf

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01"
ZIP = b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + bytes(range(256))


def test_type_comes_from_content_not_name() -> None:
    assert sniff(make_pdf([["x"]]), "notes.txt") == PDF
    assert sniff(b"<!DOCTYPE html><html><body>hi</body></html>", "page.txt") == HTML
    assert sniff(b"\xef\xbb\xbf  <!-- c --> <html lang=en>", "x.md") == HTML
    assert sniff("# Titel\n\nGrüße".encode(), "readme.md") == MARKDOWN
    assert sniff(b"plain words", "report.pdf") == TEXT  # a .pdf name does not make it a PDF
    assert sniff(b"a < b and <b>bold</b> later", "x.txt") == TEXT  # markup late in text is still text


@pytest.mark.parametrize("data", [PNG, ZIP, "text".encode("utf-16"), b"abc\x00def", b"\xff\xfe\xfa junk"])
def test_binary_and_non_utf8_are_refused(data: bytes) -> None:
    with pytest.raises(UnsupportedMediaType, match="PDF, HTML and UTF-8 text"):
        sniff(data, "notes.txt")


def test_pdf_text_is_extracted_page_by_page() -> None:
    data = make_pdf([["The harbour opens at six."], ["Ferries leave hourly."]])
    text = extract_text(data, PDF)
    assert "The harbour opens at six." in text
    assert text.index("harbour") < text.index("Ferries")


def test_encrypted_pdf_says_so() -> None:
    with pytest.raises(UnreadableDocument, match="encrypted"):
        extract_text(make_pdf([["secret"]], password="pw"), PDF)


@pytest.mark.parametrize("data", [make_pdf([["cut short"]])[:200], b"%PDF-1.7\n" + b"garbage " * 50])
def test_broken_pdf_says_damaged(data: bytes) -> None:
    with pytest.raises(UnreadableDocument, match="damaged|no text"):
        extract_text(data, PDF)


def test_pdf_without_text_says_why() -> None:
    with pytest.raises(UnreadableDocument, match="no text layer"):
        extract_text(make_pdf([[]]), PDF)


def test_html_drops_scripts_and_styles_keeps_title_and_blocks() -> None:
    markup = ("<html><head><title>Ships</title><style>p{color:red}</style><script>alert('x')</script></head>"
              "<body><h1>Fleet</h1><p>The <b>Nordlys</b> sails at 9&nbsp;am.</p><script>evil()</script>"
              "<ul><li>one</li><li>two</li></ul></body></html>")
    text = extract_text(markup.encode(), HTML)
    assert "alert" not in text and "evil" not in text and "color" not in text
    assert text.splitlines()[:3] == ["Ships", "", "Fleet"] or text.startswith("Ships")
    assert "The Nordlys sails at 9\xa0am." in text or "The Nordlys sails at 9 am." in text
    assert "one\n" in text and "two" in text


def test_html_with_an_unclosed_head_still_gives_the_body() -> None:
    assert "visible" in html_text("<head><meta charset=utf-8><body><p>visible</p>")


def test_empty_text_is_refused() -> None:
    with pytest.raises(UnreadableDocument, match="no text"):
        extract_text(b" \n\n\t ", TEXT)


def test_chunks_follow_paragraphs_and_overlap() -> None:
    paragraphs = [" ".join(f"Paragraph {p} sentence {s} is here." for s in range(12)) for p in range(6)]
    chunks = chunk_text("\n\n".join(paragraphs), size=800, overlap=150)
    assert len(chunks) > 3
    assert all(len(c) <= 800 + 150 for c in chunks)
    for before, after in zip(chunks, chunks[1:], strict=False):
        first_sentence = after.split(". ")[0].split("\n\n")[0]
        assert first_sentence in before  # the next passage starts inside the previous one (overlap)
    joined = " ".join(chunks)
    for p in range(6):
        for s in range(12):
            assert f"Paragraph {p} sentence {s} is here." in joined  # nothing lost
    assert all(not c.startswith(" ") and c.endswith(".") for c in chunks)  # cut at sentence ends


def test_a_long_unbroken_text_is_still_cut() -> None:
    chunks = chunk_text("x" * 2000, size=800, overlap=100)
    assert [len(c) for c in chunks] == [800, 800, 400]


def test_chunk_count_is_bounded() -> None:
    with pytest.raises(UnreadableDocument, match="longer than 3 passages"):
        chunk_text("\n\n".join("word " * 100 for _ in range(20)), size=800, overlap=0, limit=3)


def test_file_names_lose_directories_and_control_characters() -> None:
    assert clean_name("C:\\Users\\x\\report.pdf") == "report.pdf"
    assert clean_name("../../etc/passwd\x00\n") == "passwd"
    assert clean_name("") == "document"
