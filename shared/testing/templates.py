"""Migrated SQLite databases to copy from: each service's migrations run once per test session.

Most tests start a service on a database of their own, and the service migrates it at start. On SQLite
that is the costlier half of starting a service in a test: contacts has eleven migrations, and SQLite
rebuilds a table for each `ALTER`. Instead, the first test of a session that starts a service on SQLite
migrates a template file through the same `upgrade_to_head` the runtime uses, and each later test's
database file is a copy of it. The runtime still runs its migrations at start, and finds them applied.

Only a database file that does not exist yet is filled: a test that prepared its database (an older
revision, rows written before the service starts) gets exactly what it prepared.
`tests/shared/test_migrations.py` runs every migration up and down on empty databases, as before.

PostgreSQL databases are not copied: `CREATE DATABASE … TEMPLATE` copies and syncs the whole template
(some megabytes), which measured slower than running the migrations on the empty database.
"""

from __future__ import annotations

import sqlite3
import uuid
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import make_url

from shared.db import Database
from shared.migrations import upgrade_to_head
from shared.runtime import ServiceDefinition


@dataclass
class MigratedTemplates:
    """One migrated SQLite file per set of migrations, kept for the test session in `directory`."""

    directory: Path
    _files: dict[tuple[str, int], Path] = field(default_factory=dict)

    async def fill(self, definition: ServiceDefinition, database_url: str) -> None:
        """Copy the definition's migrated template to `database_url`, a SQLite file not made yet."""
        url = make_url(database_url)
        if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
            return
        target = Path(url.database)
        if _exists(target):
            return
        _copy(await self._template(definition), target)

    async def _template(self, definition: ServiceDefinition) -> Path:
        # Definitions that share migrations and tables share a schema (a test's variant of a service
        # with an extra router, say).
        key = (str(definition.migrations_dir), id(definition.metadata))
        if key not in self._files:
            path = self.directory / f"{definition.name}-{uuid.uuid4().hex[:8]}.sqlite"
            database = Database(f"sqlite+aiosqlite:///{path}")
            try:
                await upgrade_to_head(database, definition.migrations_dir, definition.metadata)
            finally:
                await database.dispose()
            self._files[key] = path
        return self._files[key]


def _exists(path: Path) -> bool:
    return path.exists()


def _copy(template: Path, target: Path) -> None:
    # The backup API, not a file copy: it reads a consistent image whatever the journal mode.
    target.parent.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(template)) as source, closing(sqlite3.connect(target)) as copy:
        source.backup(copy)


# Set by the test session (tests/conftest.py); without it every service migrates its own database.
active: MigratedTemplates | None = None


async def fill_from_template(definition: ServiceDefinition, database_url: str) -> None:
    if active is not None:
        await active.fill(definition, database_url)
