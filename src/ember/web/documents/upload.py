"""An upload, from multipart body to a document being indexed: bounded read, type by content, text, passages.

Everything that can refuse the file happens here, before any row exists: too large (413), not an accepted
type (415), no readable text (400 saying why). So a refused upload leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass

import anyio.to_thread
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.types import Message

from ember.config import Settings
from ember.edge import read_body
from ember.errors import BadRequest, PayloadTooLarge
from ember.web.documents.chunk import chunk_text
from ember.web.documents.parse import extract_text
from ember.web.documents.sniff import sniff

MULTIPART_SLACK = 64 << 10  # boundaries and the other fields around the file
NAME_CHARS = 255
COLLECTION_CHARS = 64
SLOW_UPLOAD_FACTOR = 5  # a large file on a slow link takes longer than a JSON body may


@dataclass(frozen=True)
class Upload:
    name: str
    media_type: str
    size: int
    sha256: str
    passages: list[str]
    chat_id: str | None
    collection: str | None


async def receive_upload(request: Request, settings: Settings) -> Upload:
    limit = settings.upload_max_bytes
    raw = await read_body(request, limit + MULTIPART_SLACK, settings.body_timeout * SLOW_UPLOAD_FACTOR)
    form = await _replayed(request, raw).form(max_files=1, max_fields=8, max_part_size=4096)
    try:
        file = form.get("file")
        if not isinstance(file, UploadFile):
            raise BadRequest('send the document as the multipart field "file"')
        data = await file.read()
        chat_id, collection = _target(form.get("chat_id"), form.get("collection"))
        name = clean_name(file.filename or "")
    finally:
        await form.close()
    if len(data) > limit:
        raise PayloadTooLarge(f"the file is {len(data)} bytes; uploads are limited to {limit} bytes "
                              "(EMBER_UPLOAD_MAX_BYTES)")
    media_type = sniff(data, name)
    passages = await anyio.to_thread.run_sync(_passages, data, media_type)
    return Upload(name=name, media_type=media_type, size=len(data), sha256=hashlib.sha256(data).hexdigest(),
                  passages=passages, chat_id=chat_id, collection=collection)


def _passages(data: bytes, media_type: str) -> list[str]:
    return chunk_text(extract_text(data, media_type))


def _replayed(request: Request, raw: bytes) -> Request:
    """The request again, its body (already read under the limits) delivered from memory."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": raw, "more_body": False}

    return Request(request.scope, receive)


def _target(chat_id: object, collection: object) -> tuple[str | None, str | None]:
    """Exactly one of a chat (its id) or a collection (a name)."""
    chat = chat_id.strip() if isinstance(chat_id, str) and chat_id.strip() else None
    named = clean_collection(collection) if isinstance(collection, str) and collection.strip() else None
    if (chat is None) == (named is None):
        raise BadRequest('name where the document goes: "chat_id" or "collection" (one of them)')
    return chat, named


def clean_collection(value: str) -> str:
    name = " ".join(value.split())
    if len(name) > COLLECTION_CHARS or any(unicodedata.category(c).startswith("C") for c in name):
        raise BadRequest(f"a collection name is 1 to {COLLECTION_CHARS} printable characters")
    return name


def clean_name(filename: str) -> str:
    """The file's own name, without any directory part or control characters (it is shown and cited)."""
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in base if not unicodedata.category(c).startswith("C")).strip()
    return name[:NAME_CHARS] or "document"
