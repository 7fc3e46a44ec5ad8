"""Alembic revisions, one file each, applied in order by `order-manager migrate`."""
