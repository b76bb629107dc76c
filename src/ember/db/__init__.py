"""Persistence for the web role: SQLAlchemy tables, Alembic migrations, repository functions.

SQL lives only in this package. It imports leaves (config, errors, names, durations) and third-party code.
``Database`` is loaded on first use, so that ``ember.db.vocabulary`` can be imported without SQLAlchemy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ember.db.database import Database

__all__ = ["Database"]


def __getattr__(name: str) -> Any:
    if name == "Database":
        from ember.db.database import Database

        return Database
    raise AttributeError(f"module 'ember.db' has no attribute {name!r}")
