"""Alembic migration scripts (run through `order_manager.adapters.postgres.migrate`)."""
