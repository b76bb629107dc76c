"""The UI's routes, put in front of the gateway's by ``create_app``. Handlers are thin: they call web modules."""

from __future__ import annotations

from starlette.routing import BaseRoute, Route

from ember.web import accounts, admin_audit, admin_keys, admin_models, admin_policies, admin_users, chats
from ember.web.assets import static_file
from ember.web.documents import api as documents
from ember.web.pages import index


def ui_routes() -> list[BaseRoute]:
    return [
        Route("/", index, methods=["GET", "HEAD"]),
        Route("/static/{path:path}", static_file, methods=["GET", "HEAD"]),
        # accounts
        Route("/login", accounts.login_page, methods=["GET"]),
        Route("/login", accounts.login_submit, methods=["POST"]),
        Route("/signup", accounts.signup_page, methods=["GET"]),
        Route("/signup", accounts.signup_submit, methods=["POST"]),
        Route("/logout", accounts.logout, methods=["POST"]),
        Route("/account", accounts.account_page, methods=["GET"]),
        Route("/account", accounts.account_submit, methods=["POST"]),
        Route("/setup", accounts.setup_page, methods=["GET"]),
        Route("/setup", accounts.setup_submit, methods=["POST"]),
        Route("/ui/api/me", accounts.me, methods=["GET"]),
        # admin: users and settings
        Route("/admin", admin_users.users_page, methods=["GET"]),
        Route("/admin/users", admin_users.users_page, methods=["GET"]),
        Route("/admin/settings", admin_users.settings_page, methods=["GET"]),
        Route("/ui/api/admin/users", admin_users.list_all, methods=["GET"]),
        Route("/ui/api/admin/users/{name}", admin_users.update, methods=["PATCH"]),
        Route("/ui/api/admin/users/{name}/password", admin_users.reset_password, methods=["POST"]),
        Route("/ui/api/admin/settings", admin_users.get_settings, methods=["GET"]),
        Route("/ui/api/admin/settings", admin_users.put_settings, methods=["PUT"]),
        # admin: models, policies, keys, audit
        Route("/admin/models", admin_models.models_page, methods=["GET"]),
        Route("/admin/policies", admin_policies.policies_page, methods=["GET"]),
        Route("/admin/keys", admin_keys.keys_page, methods=["GET"]),
        Route("/admin/audit", admin_audit.audit_page, methods=["GET"]),
        Route("/ui/api/admin/policies", admin_policies.list_all, methods=["GET"]),
        Route("/ui/api/admin/policies/{model:path}", admin_policies.put, methods=["PUT"]),
        Route("/ui/api/admin/policies/{model:path}", admin_policies.delete, methods=["DELETE"]),
        Route("/ui/api/admin/keys", admin_keys.list_all, methods=["GET"]),
        Route("/ui/api/admin/keys", admin_keys.create, methods=["POST"]),
        Route("/ui/api/admin/keys/{name:path}", admin_keys.revoke, methods=["DELETE"]),
        Route("/ui/api/admin/audit", admin_audit.query, methods=["GET"]),
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
        # documents
        Route("/ui/api/collections", documents.list_collections, methods=["GET"]),
        Route("/ui/api/documents", documents.list_documents, methods=["GET"]),
        Route("/ui/api/documents", documents.upload_document, methods=["POST"]),
        Route("/ui/api/documents/{document_id}", documents.get_document, methods=["GET"]),
        Route("/ui/api/documents/{document_id}", documents.delete_document, methods=["DELETE"]),
        Route("/ui/api/documents/{document_id}/chunks/{ordinal}", documents.get_chunk, methods=["GET"]),
    ]
