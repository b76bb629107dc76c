"""The documents API under /ui/api: upload, list, progress, delete, the text of a cited passage, collections.

Handlers are thin: the session's user, then ember.web.documents.upload / ember.db.documents. Every id is
looked up together with the user, so another user's document is a 404 like a missing one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ember.db import documents as repo
from ember.db.documents import Document, NewDocument
from ember.errors import DocumentNotFound
from ember.web.documents.embed import embed_model
from ember.web.documents.index import Job
from ember.web.documents.upload import clean_collection, receive_upload
from ember.web.services import web
from ember.web.session import current_user

T = TypeVar("T")


async def _db(fn: Callable[..., T], *args: Any) -> T:
    return await anyio.to_thread.run_sync(fn, *args)


def public_document(document: Document) -> dict[str, Any]:
    return {"id": document.id, "name": document.name, "media_type": document.media_type, "size": document.size,
            "status": document.status, "error": document.error, "chunks_total": document.chunks_total,
            "chunks_done": document.chunks_done, "chat_id": document.chat_id, "collection": document.collection,
            "created_at": document.created_at.isoformat()}


async def upload_document(request: Request) -> Response:
    ui, user = web(request), await current_user(request)
    upload = await receive_upload(request, ui.settings)
    model = await _db(embed_model, ui.database, ui.settings.bundled_model)
    new = NewDocument(name=upload.name, media_type=upload.media_type, size=upload.size, sha256=upload.sha256,
                      chunks_total=len(upload.passages), embed_model=model, chat_id=upload.chat_id,
                      collection=upload.collection)
    document = await _db(repo.create_document, ui.database, user.user_id, new)
    client = request.client.host if request.client else None
    ui.indexer.start(Job(document_id=document.id, user=user, model=model, passages=upload.passages, client=client))
    return JSONResponse(public_document(document), status_code=202)


async def list_documents(request: Request) -> Response:
    ui, user = web(request), await current_user(request)
    chat_id = request.query_params.get("chat_id") or None
    collection = request.query_params.get("collection") or None
    if collection is not None:
        collection = clean_collection(collection)
    documents = await anyio.to_thread.run_sync(
        lambda: repo.list_documents(ui.database, user.user_id, chat_id=chat_id, collection=collection))
    return JSONResponse({"documents": [public_document(d) for d in documents]})


async def get_document(request: Request) -> Response:
    ui, user = web(request), await current_user(request)
    document = await _db(repo.get_document, ui.database, user.user_id, request.path_params["document_id"])
    return JSONResponse(public_document(document))


async def delete_document(request: Request) -> Response:
    ui, user = web(request), await current_user(request)
    await _db(repo.delete_document, ui.database, user.user_id, request.path_params["document_id"])
    return Response(status_code=204)


async def get_chunk(request: Request) -> Response:
    ui, user = web(request), await current_user(request)
    document_id, raw_ordinal = request.path_params["document_id"], request.path_params["ordinal"]
    if not raw_ordinal.isdigit() or len(raw_ordinal) > 9:
        raise DocumentNotFound(f"{document_id}/{raw_ordinal[:16]}")
    document, text = await _db(repo.get_chunk, ui.database, user.user_id, document_id, int(raw_ordinal))
    return JSONResponse({"document_id": document.id, "name": document.name, "ordinal": int(raw_ordinal),
                         "text": text})


async def list_collections(request: Request) -> Response:
    ui, user = web(request), await current_user(request)
    found = await _db(repo.collections, ui.database, user.user_id)
    return JSONResponse({"collections": [{"name": name, "documents": count} for name, count in found]})
