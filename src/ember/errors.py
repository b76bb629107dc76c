"""Typed errors, all of them. Each carries the HTTP status it maps to; the mapping to a response lives in
api/errors.py. Every EmberError subclass in Ember is defined here, so this tree is the whole list:

    EmberError
      BadRequest (400)            InvalidModelName, CapabilityError, ContextOverflow,
                                  BadGGUF, ModelfileError, TemplateError
      ModelNotFound (404)
      BlobNotFound (404)
      RequestTimeout (408)
      PayloadTooLarge (413)
      UnsupportedMediaType (415)  an uploaded document whose content is not text, Markdown, PDF or HTML
      ServerBusy (503)
      RateLimited (429)           a key or role went over its requests/tokens per minute or concurrency
      RunnerError (500)           RunnerCrashed, LoadFailed
      CorruptManifest (500)
      RegistryError (502)         RegistryNotFound (404)
      DeadlineExceeded (504)
      ClientGone (499)            the client disconnected; nobody reads the answer
    accounts (ember.db):
      BadRequest (400)            InvalidName, InvalidRole, InvalidScope, InvalidPassword
      BadRequest (400)            UnreadableDocument (a PDF that is encrypted or broken, a file with no text)
      NotFound (404)              UserNotFound, KeyNotFound, ChatNotFound, MessageNotFound, DocumentNotFound
      Conflict (409)              UserExists, KeyExists, LastAdmin
      DatabaseUnavailable (503)
    gateway (ember.gateway) and engine exposure:
      Unauthorized (401)          no key, a malformed or unknown key, a revoked or expired one
      Forbidden (403)             a valid key without the scope, or for a model it may not use
      EngineUnavailable (503)     no engine node could take the request
      UpstreamFailed (502)        an engine failed mid-answer
      UnsafeExposure (500)        the engine would listen off loopback with no EMBER_ENGINE_KEY
"""

from __future__ import annotations

from pathlib import Path


class EmberError(Exception):
    status: int = 500
    kind: str = "api_error"
    code: str | None = None  # OpenAI's machine-readable error code, where one applies

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(EmberError):
    status = 400
    kind = "invalid_request_error"


class InvalidModelName(BadRequest):
    def __init__(self, message: str = "invalid model name") -> None:
        super().__init__(message)


class CapabilityError(BadRequest):
    """The model lacks a capability the request needs (tools, thinking, vision, embedding...)."""


class ContextOverflow(BadRequest):
    """The prompt does not fit the context window and the client asked not to truncate."""


class BadGGUF(BadRequest):
    """The file is not a readable GGUF model."""

    def __init__(self, path: Path | str, problem: str) -> None:
        super().__init__(f"invalid GGUF file {path}: {problem}")
        self.path = str(path)
        self.problem = problem


class ModelfileError(BadRequest):
    """A Modelfile that cannot be parsed; the message names the offending line."""


class TemplateError(BadRequest):
    """A template that does not parse, or fails while executing."""


class ModelNotFound(EmberError):
    status = 404
    kind = "not_found_error"

    def __init__(self, name: str, message: str | None = None) -> None:
        super().__init__(message or f"model '{name}' not found")
        self.name = name


class BlobNotFound(EmberError):
    status = 404
    kind = "not_found_error"


class RequestTimeout(EmberError):
    status = 408
    kind = "invalid_request_error"


class PayloadTooLarge(EmberError):
    status = 413
    kind = "invalid_request_error"


class UnsupportedMediaType(EmberError):
    """An upload whose content (not its name) is none of the accepted types."""

    status = 415
    kind = "invalid_request_error"


class ServerBusy(EmberError):
    status = 503
    kind = "server_error"

    def __init__(self, message: str = "server busy, please try again.  maximum pending requests exceeded") -> None:
        super().__init__(message)


class RateLimited(EmberError):
    """Over a rate limit. ``limit`` names which one (requests, tokens or concurrency) and is also the error's
    type, as OpenAI's 429 bodies say ``"type": "requests"`` with ``"code": "rate_limit_exceeded"``; ``headers``
    are the x-ratelimit-* values and Retry-After to send with the 429."""

    status = 429
    kind = "rate_limit_exceeded"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, limit: str, retry_after: float, headers: dict[str, str]) -> None:
        super().__init__(message)
        self.kind = limit
        self.limit = limit
        self.retry_after = retry_after
        self.headers = headers


class RunnerError(EmberError):
    status = 500
    kind = "api_error"


class RunnerCrashed(RunnerError):
    """The runner process died or wedged while serving the request."""


class LoadFailed(RunnerError):
    """The model could not be loaded (broken GGUF, out of memory, load timeout)."""


class CorruptManifest(EmberError):
    """A manifest file exists but cannot be used (bad JSON, wrong shape, bad digests)."""

    status = 500


class RegistryError(EmberError):
    """The registry could not be reached, refused the request, or sent something unusable."""

    status = 502
    kind = "api_error"


class RegistryNotFound(RegistryError):
    status = 404
    kind = "not_found_error"


class DeadlineExceeded(EmberError):
    status = 504
    kind = "timeout_error"


class ClientGone(EmberError):
    status = 499
    kind = "client_closed_request"

    def __init__(self, message: str = "the client closed the request") -> None:
        super().__init__(message)


# --- accounts (ember.db): users, API keys ---------------------------------------------------------------------


class InvalidName(BadRequest):
    """A user or key name that is empty, too long or holds control characters."""


class InvalidRole(BadRequest):
    """A user role outside ember.db.users.ROLES."""


class InvalidScope(BadRequest):
    """An API key scope outside ember.db.keys.SCOPES."""


class InvalidPassword(BadRequest):
    """A password that does not meet the minimum rules (length)."""


class NotFound(EmberError):
    status = 404
    kind = "not_found_error"


class UserNotFound(NotFound):
    def __init__(self, name: str) -> None:
        super().__init__(f"user {name!r} not found")
        self.name = name


class KeyNotFound(NotFound):
    def __init__(self, name: str) -> None:
        super().__init__(f"API key {name!r} not found")
        self.name = name


class PolicyNotFound(NotFound):
    def __init__(self, model: str) -> None:
        super().__init__(f"no policy for model {model!r}")
        self.model = model


class ChatNotFound(NotFound):
    """No such chat, or another user's: the two answer the same, so ids reveal nothing."""

    def __init__(self, chat_id: str) -> None:
        super().__init__(f"chat {chat_id!r} not found")


class MessageNotFound(NotFound):
    """No such message in the user's chats (another user's message answers the same)."""

    def __init__(self, message_id: str) -> None:
        super().__init__(f"message {message_id!r} not found")


class DocumentNotFound(NotFound):
    """No such document (or chunk) among the user's: another user's id answers the same."""

    def __init__(self, document_id: str) -> None:
        super().__init__(f"document {document_id!r} not found")


class UnreadableDocument(BadRequest):
    """An upload of an accepted type whose text cannot be read; the message says why."""


class Conflict(EmberError):
    status = 409
    kind = "conflict_error"


class UserExists(Conflict):
    def __init__(self, name: str) -> None:
        super().__init__(f"user {name!r} already exists")
        self.name = name


class KeyExists(Conflict):
    def __init__(self, name: str) -> None:
        super().__init__(f"an active API key named {name!r} already exists")
        self.name = name


class LastAdmin(Conflict):
    """The change would leave no enabled admin (demoting or disabling the last one)."""


class DatabaseUnavailable(EmberError):
    """The database cannot be reached or opened (wrong URL, server down, unreadable file)."""

    status = 503
    kind = "server_error"


# --- gateway (ember.gateway) and engine exposure ----------------------------------------------------------------


class Unauthorized(EmberError):
    """No credentials, or ones that do not name a usable key. Answered with ``WWW-Authenticate: Bearer``."""

    status = 401
    kind = "invalid_request_error"
    code = "invalid_api_key"


class Forbidden(EmberError):
    """A valid key that lacks the scope for the route, or may not use the model asked for."""

    status = 403
    kind = "invalid_request_error"
    code = "insufficient_permissions"


class DocumentIndexing(Conflict):
    """A message refers to a document that is still being indexed: its text is not searchable yet."""

    def __init__(self, name: str) -> None:
        super().__init__(f"document {name!r} is still being indexed; send the message when it is ready")


class CsrfFailed(Forbidden):
    """A browser session's state-changing request without its CSRF token (or with a wrong one)."""

    code = "csrf_failed"


class EngineUnavailable(EmberError):
    """No engine node is healthy, or every node tried refused the request before answering."""

    status = 503
    kind = "server_error"


class UpstreamFailed(EmberError):
    """An engine node broke off an answer that had already started."""

    status = 502
    kind = "server_error"


class UnsafeExposure(EmberError):
    """The engine would listen on a non-loopback address without EMBER_ENGINE_KEY (and was not told to run open)."""
