"""Persistence for the web role: SQLAlchemy tables, Alembic migrations, repository functions.

SQL lives only in this package. It imports leaves (config, errors, names, durations) and third-party code.
"""

from ember.db.database import Database

__all__ = ["Database"]
