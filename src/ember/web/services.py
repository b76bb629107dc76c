"""The web UI's wired parts, built once by ``create_app`` and reached from handlers through the app."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from starlette.requests import Request

from ember.config import Settings
from ember.db.database import Database
from ember.db.sessions import WebUser
from ember.gateway.services import Gateway
from ember.web.documents.index import Indexer
from ember.web.login_limits import LoginLimits
from ember.web.streams import Generations


@dataclass(frozen=True)
class Retrieved:
    """What retrieval adds to one chat turn: text for the prompt (with [n] markers) and the citations."""

    system_text: str
    citations: list[dict[str, Any]] = field(default_factory=list)


class Retriever(Protocol):
    async def context(self, user: WebUser, chat_id: str, query: str, document_ids: list[str],
                      collections: list[str]) -> Retrieved:
        """The passages of the named (and the chat's own) documents nearest to ``query``; raises
        DocumentIndexing while one of them is still being indexed."""
        ...


@dataclass
class WebUI:
    settings: Settings
    database: Database
    gateway: Gateway
    retriever: Retriever | None = None
    indexer: Indexer = field(init=False)  # documents being embedded in the background (ember.web.documents)
    generations: Generations = field(default_factory=Generations)  # chat answers generated in this process
    model_titles: bool = True  # after a chat's first answer, ask the model for a title in the background
    login_limits: LoginLimits | None = None  # set by create_app; None only in unit tests that need no logins


    def __post_init__(self) -> None:
        self.indexer = Indexer(self.database, self.gateway)


def web(request: Request) -> WebUI:
    found: WebUI = request.app.state.web
    return found
