"""Model names: ``[scheme://][host/][namespace/]model[:tag]``, resolved the way Ollama resolves them.

``x``, ``x:latest``, ``library/x`` and ``registry.ollama.ai/library/x:latest`` are one model. Each part has
its own character rules; every part also becomes a directory or file name in the model store, so the
rules double as path-safety checks (no ``..``, no separators, no control characters).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ember.errors import InvalidModelName

DEFAULT_HOST = "registry.ollama.ai"
DEFAULT_NAMESPACE = "library"
DEFAULT_TAG = "latest"
DEFAULT_SCHEME = "https"

_HOST = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,349}")
_NAMESPACE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,79}")
_MODEL_OR_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,79}")
_SCHEMES = ("http://", "https://")


@dataclass(frozen=True)
class ModelName:
    host: str
    namespace: str
    model: str
    tag: str

    @classmethod
    def parse(cls, text: str) -> ModelName:
        """Parse a user-supplied name, filling in defaults; raise InvalidModelName if any part is bad."""
        if not isinstance(text, str):
            raise InvalidModelName()
        rest = _strip_scheme(text)
        rest, tag = _split_tag(rest)
        parts = rest.split("/")
        if len(parts) > 3:
            raise InvalidModelName()
        model = parts[-1]
        namespace = parts[-2] if len(parts) >= 2 else DEFAULT_NAMESPACE
        host = parts[-3] if len(parts) == 3 else DEFAULT_HOST
        name = cls(host=host, namespace=namespace, model=model, tag=tag)
        name.validate()
        return name

    def validate(self) -> None:
        checks = ((_HOST, self.host), (_NAMESPACE, self.namespace), (_MODEL_OR_TAG, self.model),
                  (_MODEL_OR_TAG, self.tag))
        for pattern, part in checks:
            # ".." is allowed by the character classes but would climb out of the store as a path.
            if not pattern.fullmatch(part) or ".." in part:
                raise InvalidModelName()

    @property
    def display(self) -> str:
        """Shortest form, always with the tag: ``x:latest``, ``user/x:1b``, ``hf.co/u/x:Q4_K_M``."""
        if self.host.casefold() != DEFAULT_HOST:
            return f"{self.host}/{self.namespace}/{self.model}:{self.tag}"
        if self.namespace.casefold() != DEFAULT_NAMESPACE:
            return f"{self.namespace}/{self.model}:{self.tag}"
        return f"{self.model}:{self.tag}"

    @property
    def full(self) -> str:
        return f"{self.host}/{self.namespace}/{self.model}:{self.tag}"

    @property
    def repository(self) -> str:
        """``namespace/model``, the path segment registry URLs use."""
        return f"{self.namespace}/{self.model}"

    @property
    def key(self) -> str:
        """Identity for case-insensitive comparison (Ollama matches local names per part, ignoring case)."""
        return self.full.casefold()

    @property
    def parts(self) -> tuple[str, str, str, str]:
        """Host, namespace, model, tag: the path of the manifest below ``manifests/``."""
        return (self.host, self.namespace, self.model, self.tag)

    def with_tag(self, tag: str) -> ModelName:
        name = ModelName(self.host, self.namespace, self.model, tag)
        name.validate()
        return name

    def __str__(self) -> str:
        return self.display


def _strip_scheme(text: str) -> str:
    for scheme in _SCHEMES:
        if text.lower().startswith(scheme):
            return text[len(scheme):]
    return text


def _split_tag(text: str) -> tuple[str, str]:
    """Split ``:tag`` only when the last colon comes after the last slash (``host:port/x`` has no tag)."""
    colon = text.rfind(":")
    if colon > text.rfind("/"):
        return text[:colon], text[colon + 1:]
    return text, DEFAULT_TAG


def is_insecure(text: str) -> bool:
    """Whether the name was written with ``http://`` (the registry client must then use plain HTTP)."""
    return text.lower().startswith("http://")
