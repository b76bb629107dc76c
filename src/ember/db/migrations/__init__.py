"""Alembic environment and revisions; run through ember.db.migrate, no alembic.ini needed."""
