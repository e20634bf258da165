"""PostgreSQL storage: the only module that writes SQL.

Query functions take an asyncpg connection first, so callers compose them in
one transaction (`async with db.transaction() as conn`).
"""

from .db import Database, DatabaseUnavailable, connect_once, until_available

__all__ = ["Database", "DatabaseUnavailable", "connect_once", "until_available"]
