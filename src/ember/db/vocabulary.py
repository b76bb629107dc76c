"""The fixed words of accounts, importable without loading SQLAlchemy (the CLI builds its options from them)."""

from __future__ import annotations

ROLES = ("admin", "user", "pending")
SCOPES = ("chat", "embed", "models", "admin")
