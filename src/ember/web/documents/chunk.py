"""Cutting a document's text into passages of about ``size`` characters for embedding and citing.

Passages end on paragraph boundaries where they can, else on sentence boundaries, else on a space; a
sentence with no space in reach is cut hard. Consecutive passages share up to ``overlap`` characters (whole
sentences), so a fact that straddles a boundary is still found whole in one of them. The count per document
is bounded: a longer document is refused rather than indexed in part.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ember.errors import UnreadableDocument

CHUNK_CHARS = 800
OVERLAP_CHARS = 150
MAX_CHUNKS = 2000
_PARAGRAPHS = re.compile(r"\n\s*\n")
_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+|\n")


@dataclass(frozen=True)
class _Unit:
    text: str
    new_paragraph: bool  # joined to the previous unit by a blank line (else by a space)


def chunk_text(text: str, size: int = CHUNK_CHARS, overlap: int = OVERLAP_CHARS,
               limit: int = MAX_CHUNKS) -> list[str]:
    chunks: list[str] = []
    current: list[_Unit] = []
    length = 0
    for unit in _units(text, size):
        if current and length + len(unit.text) > size:
            chunks.append(_join(current))
            if len(chunks) >= limit:
                raise UnreadableDocument(f"cannot index this document: it is longer than {limit} passages of "
                                         f"about {size} characters; split it into smaller files")
            current = _tail(current, overlap)
            length = sum(len(u.text) + 1 for u in current)
        current.append(unit)
        length += len(unit.text) + 1
    if current:
        chunks.append(_join(current))
    return chunks


def _units(text: str, size: int) -> list[_Unit]:
    """Paragraphs that fit, else their sentences, else pieces of at most ``size`` characters."""
    units: list[_Unit] = []
    for paragraph in _PARAGRAPHS.split(text):
        paragraph = paragraph.strip()
        if not paragraph:
            continue
        pieces = [paragraph] if len(paragraph) <= size else _sentences(paragraph, size)
        units.extend(_Unit(piece, new_paragraph=i == 0) for i, piece in enumerate(pieces))
    return units


def _sentences(paragraph: str, size: int) -> list[str]:
    pieces: list[str] = []
    for sentence in _SENTENCE_END.split(paragraph):
        sentence = sentence.strip()
        while len(sentence) > size:
            cut = sentence.rfind(" ", size // 2, size)
            cut = cut if cut > 0 else size
            pieces.append(sentence[:cut].strip())
            sentence = sentence[cut:].strip()
        if sentence:
            pieces.append(sentence)
    return pieces


def _tail(units: list[_Unit], overlap: int) -> list[_Unit]:
    """The end of a passage that fits in ``overlap`` characters, as whole units or else as the last whole
    sentences of its last unit: the next passage starts with it."""
    if len(units) == 1:
        return _last_sentences(units[0].text, overlap)
    kept: list[_Unit] = []
    total = 0
    for unit in reversed(units[1:]):  # never the whole passage again
        if total + len(unit.text) > overlap:
            if not kept:
                kept = _last_sentences(unit.text, overlap)
            break
        kept.insert(0, unit)
        total += len(unit.text) + 1
    return kept


def _last_sentences(text: str, overlap: int) -> list[_Unit]:
    sentences = [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]
    kept: list[str] = []
    while len(sentences) > 1 and len(" ".join([sentences[-1], *kept])) <= overlap:
        kept.insert(0, sentences.pop())
    return [_Unit(" ".join(kept), new_paragraph=True)] if kept else []


def _join(units: list[_Unit]) -> str:
    parts = [units[0].text]
    for unit in units[1:]:
        parts.append(("\n\n" if unit.new_paragraph else " ") + unit.text)
    return "".join(parts)
