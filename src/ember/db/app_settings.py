"""Settings an admin changes at run time through the web UI (sign-up mode, the documents' embedding model).

A JSON value per key in ``app_settings``; environment settings give the defaults until an admin sets a value.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import IntegrityError

from ember.db.database import Database
from ember.db.tables import AppSettingRow, utcnow


def get_setting(db: Database, key: str, default: Any = None) -> Any:
    with db.reading() as session:
        row = session.get(AppSettingRow, key)
        return default if row is None else row.value


def set_setting(db: Database, key: str, value: Any) -> None:
    try:
        _write(db, key, value)
    except IntegrityError:  # another writer inserted the key between our read and our insert: update that row
        _write(db, key, value)


def _write(db: Database, key: str, value: Any) -> None:
    with db.session() as session:
        row = session.get(AppSettingRow, key)
        if row is None:
            session.add(AppSettingRow(key=key, value=value, updated_at=utcnow()))
        else:
            row.value = value
            row.updated_at = utcnow()
