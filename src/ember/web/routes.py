"""The UI's routes, put in front of the gateway's by ``create_app``. Handlers are thin: they call web modules."""

from __future__ import annotations

from starlette.routing import BaseRoute, Route

from ember.web import chats
from ember.web.assets import static_file
from ember.web.pages import index


def ui_routes() -> list[BaseRoute]:
    return [
        Route("/", index, methods=["GET", "HEAD"]),
        Route("/static/{path:path}", static_file, methods=["GET", "HEAD"]),
        # chats
        Route("/ui/api/models", chats.list_models, methods=["GET"]),
        Route("/ui/api/chats", chats.list_chats, methods=["GET"]),
        Route("/ui/api/chats", chats.create_chat, methods=["POST"]),
        Route("/ui/api/chats/import", chats.import_chat, methods=["POST"]),
        Route("/ui/api/chats/{chat_id}", chats.get_chat, methods=["GET"]),
        Route("/ui/api/chats/{chat_id}", chats.update_chat, methods=["PATCH"]),
        Route("/ui/api/chats/{chat_id}", chats.delete_chat, methods=["DELETE"]),
        Route("/ui/api/chats/{chat_id}/export", chats.export_chat, methods=["GET"]),
        Route("/ui/api/chats/{chat_id}/messages", chats.post_message, methods=["POST"]),
        Route("/ui/api/chats/{chat_id}/messages/{message_id}/regenerate", chats.regenerate, methods=["POST"]),
        Route("/ui/api/chats/{chat_id}/messages/{message_id}/edit", chats.edit, methods=["POST"]),
        Route("/ui/api/messages/{message_id}/stream", chats.stream, methods=["GET"]),
        Route("/ui/api/messages/{message_id}/stop", chats.stop, methods=["POST"]),
    ]
