"""Uploaded documents and their chunks, always read and written on behalf of one user.

A document is created ``indexing`` with its chunk count known; the indexer adds chunks (text and embedding)
batch by batch, which advances ``chunks_done``, then marks it ``ready``. A failure deletes every chunk it had,
so nothing half-indexed is ever searched. Every query that takes a document id also names the user: another
user's id answers like a missing one (DocumentNotFound).

Embeddings are float32 bytes in ``chunks.embedding``; scoring them is ember.web.documents.retrieve's job.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from ember.db.database import Database
from ember.db.ids import looks_like_id, new_id
from ember.db.tables import ChatRow, ChunkRow, DocumentRow, utcnow
from ember.errors import ChatNotFound, DocumentNotFound

INDEXING, READY, FAILED = "indexing", "ready", "failed"


@dataclass(frozen=True)
class Document:
    id: str
    user_id: int
    chat_id: str | None
    collection: str | None
    name: str
    media_type: str
    size: int
    sha256: str
    status: str
    error: str | None
    chunks_total: int
    chunks_done: int
    embed_model: str | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: DocumentRow) -> Document:
        return cls(id=row.id, user_id=row.user_id, chat_id=row.chat_id, collection=row.collection, name=row.name,
                   media_type=row.media_type, size=row.size, sha256=row.sha256, status=row.status,
                   error=row.error, chunks_total=row.chunks_total, chunks_done=row.chunks_done,
                   embed_model=row.embed_model, created_at=row.created_at)


@dataclass(frozen=True)
class NewDocument:
    name: str
    media_type: str
    size: int
    sha256: str
    chunks_total: int
    embed_model: str
    chat_id: str | None = None
    collection: str | None = None


@dataclass(frozen=True)
class NewChunk:
    ordinal: int
    text: str
    embedding: bytes  # float32 values
    dims: int


@dataclass(frozen=True)
class StoredVectors:
    """The embeddings of some documents' chunks, in one order: ``keys[i]`` is (document_id, ordinal) of
    ``blobs[i]``."""

    keys: list[tuple[str, int]]
    blobs: list[bytes]
    dims: list[int]


# --- documents -------------------------------------------------------------------------------------------


def create_document(db: Database, user_id: int, new: NewDocument) -> Document:
    """A document in status ``indexing``; a ``chat_id`` must be one of the user's chats."""
    row = DocumentRow(id=new_id(), user_id=user_id, chat_id=new.chat_id, collection=new.collection,
                      name=new.name, media_type=new.media_type, size=new.size, sha256=new.sha256,
                      status=INDEXING, error=None, chunks_total=new.chunks_total, chunks_done=0,
                      embed_model=new.embed_model, created_at=utcnow())
    with db.session() as session:
        if new.chat_id is not None:
            _owned_chat(session, user_id, new.chat_id)
        session.add(row)
    return Document.from_row(row)


def get_document(db: Database, user_id: int, document_id: str) -> Document:
    with db.reading() as session:
        return Document.from_row(_owned_document(session, user_id, document_id))


def list_documents(db: Database, user_id: int, *, chat_id: str | None = None,
                   collection: str | None = None) -> list[Document]:
    """The user's documents of one chat or one collection (or all of them), oldest first."""
    statement = select(DocumentRow).where(DocumentRow.user_id == user_id)
    with db.reading() as session:
        if chat_id is not None:
            _owned_chat(session, user_id, chat_id)
            statement = statement.where(DocumentRow.chat_id == chat_id)
        if collection is not None:
            statement = statement.where(DocumentRow.collection == collection)
        rows = session.scalars(statement.order_by(DocumentRow.created_at, DocumentRow.id))
        return [Document.from_row(row) for row in rows]


def candidate_documents(db: Database, user_id: int, chat_id: str | None, document_ids: Iterable[str],
                        collections: Iterable[str]) -> list[Document]:
    """What one chat turn searches: the chat's own documents, the named ones and those of the named
    collections, each once. A named id that is not the user's is DocumentNotFound."""
    wanted_ids = list(dict.fromkeys(document_ids))
    wanted_collections = list(dict.fromkeys(collections))
    found: dict[str, Document] = {}
    with db.reading() as session:
        for document_id in wanted_ids:
            row = _owned_document(session, user_id, document_id)
            found[row.id] = Document.from_row(row)
        owned = select(DocumentRow).where(DocumentRow.user_id == user_id)
        if chat_id is not None:
            found.update(_by_id(session.scalars(owned.where(DocumentRow.chat_id == chat_id))))
        if wanted_collections:
            found.update(_by_id(session.scalars(owned.where(DocumentRow.collection.in_(wanted_collections)))))
    return sorted(found.values(), key=lambda d: (d.created_at, d.id))


def collections(db: Database, user_id: int) -> list[tuple[str, int]]:
    """The user's collection names with how many documents each holds, by name."""
    statement = (select(DocumentRow.collection, func.count()).where(DocumentRow.user_id == user_id,
                                                                    DocumentRow.collection.is_not(None))
                 .group_by(DocumentRow.collection).order_by(DocumentRow.collection))
    with db.reading() as session:
        return [(str(name), int(count)) for name, count in session.execute(statement)]


def delete_document(db: Database, user_id: int, document_id: str) -> None:
    with db.session() as session:
        _owned_document(session, user_id, document_id)
        session.execute(delete(ChunkRow).where(ChunkRow.document_id == document_id))
        session.execute(delete(DocumentRow).where(DocumentRow.id == document_id))


# --- indexing --------------------------------------------------------------------------------------------


def add_chunks(db: Database, document_id: str, chunks: Sequence[NewChunk]) -> bool:
    """Store one batch and count it in ``chunks_done``. False when the document is gone or no longer indexing
    (deleted meanwhile): the indexer then stops."""
    with db.session() as session:
        row = session.get(DocumentRow, document_id, with_for_update=True)
        if row is None or row.status != INDEXING:
            return False
        session.add_all(ChunkRow(document_id=document_id, ordinal=c.ordinal, text=c.text, embedding=c.embedding,
                                 dims=c.dims) for c in chunks)
        row.chunks_done = row.chunks_done + len(chunks)
        return True


def mark_ready(db: Database, document_id: str) -> bool:
    with db.session() as session:
        changed = session.execute(update(DocumentRow).where(DocumentRow.id == document_id,
                                                            DocumentRow.status == INDEXING)
                                  .values(status=READY, chunks_done=DocumentRow.chunks_total))
        return bool(getattr(changed, "rowcount", 0))


def mark_failed(db: Database, document_id: str, error: str) -> None:
    """Failed, with the reason, and without any of its chunks: a failed document is never searched."""
    with db.session() as session:
        session.execute(delete(ChunkRow).where(ChunkRow.document_id == document_id))
        session.execute(update(DocumentRow).where(DocumentRow.id == document_id)
                        .values(status=FAILED, error=error[:1000], chunks_done=0))


def fail_unfinished(db: Database, older_than: datetime, error: str) -> int:
    """Mark failed the documents still indexing that were uploaded before ``older_than``: their indexer died
    with its process. (A window rather than "all": another replica may be indexing a fresh upload now.)"""
    with db.session() as session:
        ids = list(session.scalars(select(DocumentRow.id).where(DocumentRow.status == INDEXING,
                                                                DocumentRow.created_at < older_than)))
        if ids:
            session.execute(delete(ChunkRow).where(ChunkRow.document_id.in_(ids)))
            session.execute(update(DocumentRow).where(DocumentRow.id.in_(ids))
                            .values(status=FAILED, error=error, chunks_done=0))
        return len(ids)


# --- chunks ----------------------------------------------------------------------------------------------


def load_vectors(db: Database, document_ids: Sequence[str]) -> StoredVectors:
    """The embeddings of the chunks of ``document_ids`` (ids the caller already checked belong to the user)."""
    vectors = StoredVectors([], [], [])
    if not document_ids:
        return vectors
    statement = (select(ChunkRow.document_id, ChunkRow.ordinal, ChunkRow.embedding, ChunkRow.dims)
                 .where(ChunkRow.document_id.in_(list(document_ids)), ChunkRow.embedding.is_not(None))
                 .order_by(ChunkRow.document_id, ChunkRow.ordinal))
    with db.reading() as session:
        for document_id, ordinal, blob, dims in session.execute(statement):
            vectors.keys.append((document_id, ordinal))
            vectors.blobs.append(bytes(blob or b""))
            vectors.dims.append(dims)
    return vectors


def chunk_texts(db: Database, keys: Sequence[tuple[str, int]]) -> dict[tuple[str, int], str]:
    """The texts of the chunks named by (document_id, ordinal)."""
    found: dict[tuple[str, int], str] = {}
    with db.reading() as session:
        for document_id, ordinal in keys:
            text = session.scalar(select(ChunkRow.text).where(ChunkRow.document_id == document_id,
                                                              ChunkRow.ordinal == ordinal))
            if text is not None:
                found[(document_id, ordinal)] = text
    return found


def get_chunk(db: Database, user_id: int, document_id: str, ordinal: int) -> tuple[Document, str]:
    """One chunk of one of the user's documents, to show a cited passage."""
    with db.reading() as session:
        document = Document.from_row(_owned_document(session, user_id, document_id))
        text = session.scalar(select(ChunkRow.text).where(ChunkRow.document_id == document_id,
                                                          ChunkRow.ordinal == ordinal))
    if text is None:
        raise DocumentNotFound(f"{document_id}/{ordinal}")
    return document, text


# --- helpers ---------------------------------------------------------------------------------------------


def _owned_document(session: Session, user_id: int, document_id: str) -> DocumentRow:
    if not looks_like_id(document_id):
        raise DocumentNotFound(str(document_id)[:64])
    row = session.scalar(select(DocumentRow).where(DocumentRow.id == document_id, DocumentRow.user_id == user_id))
    if row is None:
        raise DocumentNotFound(document_id)
    return row


def _owned_chat(session: Session, user_id: int, chat_id: str) -> None:
    if not looks_like_id(chat_id) or session.scalar(
            select(ChatRow.id).where(ChatRow.id == chat_id, ChatRow.user_id == user_id)) is None:
        raise ChatNotFound(str(chat_id)[:64])


def _by_id(rows: Iterable[DocumentRow]) -> dict[str, Document]:
    return {row.id: Document.from_row(row) for row in rows}
