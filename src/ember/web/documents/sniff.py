"""What an upload is, judged by its bytes and never by its name: PDF, HTML, Markdown or plain text.

PDFs start with ``%PDF-``. Readers allow a little junk before it, so the first KiB is searched, but a magic
found after the start only counts in a file that is not UTF-8 text: a note that mentions "%PDF-1.7" is text.
HTML is text whose start (after a BOM, whitespace and comments) is a doctype or one of the usual top-level tags.
Everything else must be valid UTF-8 text without NUL bytes; its name only decides between Markdown and plain
text, which are treated alike. Anything else (images, archives, office files, UTF-16...) is refused (415).
"""

from __future__ import annotations

import re

from ember.errors import UnsupportedMediaType

PDF, HTML, MARKDOWN, TEXT = "application/pdf", "text/html", "text/markdown", "text/plain"
PDF_MAGIC = b"%PDF-"
_HTML_START = re.compile(rb"\s*(<!--.*?-->\s*)*<(!doctype\s+html|html|head|body|meta|title|p|div|h[1-6]|table)\b",
                         re.IGNORECASE | re.DOTALL)
_MARKDOWN_NAMES = (".md", ".markdown", ".mdown", ".mkd")
_CONTROL = set(range(0, 9)) | {11, 12} | set(range(14, 32))


def sniff(data: bytes, name: str) -> str:
    """The media type of ``data``; UnsupportedMediaType when it is none of the accepted ones."""
    text = data.removeprefix(b"\xef\xbb\xbf")
    if text.lstrip().startswith(PDF_MAGIC) or (PDF_MAGIC in data[:1024] and not _is_text(text)):
        return PDF
    if _HTML_START.match(text[:4096]):
        return HTML
    if not _is_text(text):
        raise UnsupportedMediaType("unsupported file type: only PDF, HTML and UTF-8 text or Markdown can be "
                                   "uploaded (the content decides, not the name)")
    return MARKDOWN if name.lower().endswith(_MARKDOWN_NAMES) else TEXT


def _is_text(data: bytes) -> bool:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    sample = text[:65536]
    controls = sum(1 for ch in sample if ord(ch) in _CONTROL)
    # NUL never appears in text; a few stray control characters (form feeds, escapes) do
    return "\x00" not in sample and controls <= len(sample) // 100
