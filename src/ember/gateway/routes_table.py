"""What each gateway route needs: the scope, where the model name is, the API's shape, and stream defaults."""

from __future__ import annotations

from dataclasses import dataclass

from ember.edge import Api


@dataclass(frozen=True)
class Route:
    path: str  # the route's template, used for audit and metrics (never a raw path: cardinality)
    scope: str | None  # None: any valid key
    api: Api = "ollama"
    model_keys: tuple[str, ...] = ("model", "name")
    json_body: bool = True
    stream_default: bool = False
    policy: bool = False  # the model policy edits the body (defaults, locked options, maxima)

    @property
    def sse(self) -> bool:
        return self.api == "openai"


CHAT, EMBED, MODELS = "chat", "embed", "models"

FORWARDED = {
    "/api/generate": Route("/api/generate", CHAT, stream_default=True, policy=True),
    "/api/chat": Route("/api/chat", CHAT, stream_default=True, policy=True),
    "/api/embed": Route("/api/embed", EMBED),
    "/api/embeddings": Route("/api/embeddings", EMBED),
    "/api/show": Route("/api/show", None),
    "/v1/chat/completions": Route("/v1/chat/completions", CHAT, api="openai", model_keys=("model",), policy=True),
    "/v1/completions": Route("/v1/completions", CHAT, api="openai", model_keys=("model",), policy=True),
    "/v1/embeddings": Route("/v1/embeddings", EMBED, api="openai", model_keys=("model",)),
}
VERSION = Route("/api/version", None, model_keys=(), json_body=False)
MODEL_INFO = Route("/v1/models/{name}", None, api="openai", model_keys=(), json_body=False)
TAGS = Route("/api/tags", None, model_keys=(), json_body=False)
PS = Route("/api/ps", None, model_keys=(), json_body=False)
MODEL_LIST = Route("/v1/models", None, api="openai", model_keys=(), json_body=False)

# Model management: to the node named in the body ("node") or ?node=, else to every healthy node.
PULL = Route("/api/pull", MODELS, stream_default=True)
CREATE = Route("/api/create", MODELS, stream_default=True)
COPY = Route("/api/copy", MODELS, model_keys=("source",))
DELETE = Route("/api/delete", MODELS)
PUSH = Route("/api/push", MODELS, stream_default=True)  # from one node that has the model
BLOB = Route("/api/blobs/{digest}", MODELS, model_keys=(), json_body=False)
