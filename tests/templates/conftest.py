"""Fixtures of the template tests (helpers live in helpers.py)."""

from templates.helpers import pg_database, redis_prefix

__all__ = ["pg_database", "redis_prefix"]
