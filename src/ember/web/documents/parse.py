"""The text of an upload whose type ember.web.documents.sniff decided: text and Markdown as they are, PDF
through pypdf, HTML through the standard library's parser (scripts and styles dropped).

Failures are UnreadableDocument (400) with a reason a person can act on: an encrypted PDF, a broken one, a
file with no text at all (a scanned PDF would need OCR, which Ember does not do).
"""

from __future__ import annotations

import io
import logging
import re
from html.parser import HTMLParser

from ember.errors import UnreadableDocument
from ember.web.documents.sniff import HTML, PDF

MAX_PDF_PAGES = 2000  # a bound on the work one upload can cause; the chunk count is bounded later too
_SPACES = re.compile(r"[ \t\f\v\r]+")
_BLANK_LINES = re.compile(r"\n{3,}")


def extract_text(data: bytes, media_type: str) -> str:
    """The document's text, whitespace tidied; UnreadableDocument when there is none."""
    if media_type == PDF:
        text = _pdf_text(data)
    elif media_type == HTML:
        text = html_text(data.decode("utf-8", "replace"))
    else:
        text = data.removeprefix(b"\xef\xbb\xbf").decode("utf-8")
    text = tidy(text)
    if not text:
        what = "PDF has no text layer (scanned pages need OCR, which Ember does not do)" if media_type == PDF \
            else "file contains no text"
        raise UnreadableDocument(f"cannot index this document: the {what}")
    return text


def tidy(text: str) -> str:
    lines = (_SPACES.sub(" ", line).strip() for line in text.replace("\r\n", "\n").split("\n"))
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


# --- PDF -------------------------------------------------------------------------------------------------


def _pdf_text(data: bytes) -> str:
    from pypdf import PdfReader  # loaded on the first PDF: the web process stays small until then
    from pypdf.errors import PdfReadError

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # its warnings about sloppy files are not ours to log
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not _open_without_password(reader):
            raise UnreadableDocument("cannot read this PDF: it is encrypted (password protected); "
                                     "upload a copy without a password")
        if len(reader.pages) > MAX_PDF_PAGES:
            raise UnreadableDocument(f"cannot index this PDF: it has {len(reader.pages)} pages, "
                                     f"more than {MAX_PDF_PAGES}")
        return "\n\n".join(page.extract_text() or "" for page in reader.pages)
    except UnreadableDocument:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, IndexError, AttributeError, RecursionError,
            AssertionError, OSError) as exc:  # pypdf reports broken files through all of these
        raise UnreadableDocument(f"cannot read this PDF: the file is damaged or not a valid PDF ({_short(exc)})") \
            from exc


def _open_without_password(reader: object) -> bool:
    """Many PDFs are "encrypted" with an empty user password only to set permissions; they open as is."""
    try:
        return bool(reader.decrypt(""))  # type: ignore[attr-defined]
    except Exception:  # e.g. a missing crypto library for AES: treated as not openable
        return False


def _short(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text[:200]


# --- HTML ------------------------------------------------------------------------------------------------


_SKIPPED = frozenset({"script", "style", "noscript", "template", "svg", "head"})
_BLOCKS = frozenset({"p", "div", "br", "li", "ul", "ol", "tr", "table", "section", "article", "header", "footer",
                     "h1", "h2", "h3", "h4", "h5", "h6", "pre", "blockquote", "hr", "dt", "dd", "title", "main",
                     "nav", "aside", "figure", "figcaption", "form"})


class _TextOfHtml(HTMLParser):
    """Collects the visible text: scripts, styles and the head are dropped (the title is kept)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0
        self.in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self.in_title = True
        elif tag == "body":  # a head left open (its end tag is optional) ends here
            self.skipping = 0
        elif tag in _SKIPPED:
            self.skipping += 1
        if tag in _BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self.in_title = False
        elif tag in _SKIPPED and self.skipping:
            self.skipping -= 1
        if tag in _BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self.in_title or not self.skipping:
            self.parts.append(data)


def html_text(markup: str) -> str:
    parser = _TextOfHtml()
    parser.feed(markup)
    parser.close()
    return "".join(parser.parts)
