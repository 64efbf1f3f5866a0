"""The ingest app's hand-written SQL: writing imported notes in bulk.

bench/sql_bench.py "notes" measures these against the ORM's bulk_create / bulk_update on the
same rows, in the same run: for 10,000 new notes the ORM spent more time building SQL than
SQLite spent storing the rows. Everything else goes through the ORM.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator

from django.db import connection, models

from ingest.models import Note


def _column(name: str) -> str:
    return connection.ops.quote_name(Note._meta.get_field(name).column)


def _params(rows: list[dict], names: list[str]) -> Iterator[list]:
    """Each row's values in `names` order, as the database takes them (JSON, datetimes)."""
    fields = [Note._meta.get_field(name) for name in names]
    is_json = [isinstance(f, models.JSONField) for f in fields]
    defaults = {f.name: f.get_default() for f in fields}
    adapt_json = connection.ops.adapt_json_value
    memo: dict = {}  # the same `now` for every row: adapt it once
    for row in rows:
        values = []
        for name, f, json_field in zip(names, fields, is_json, strict=True):
            value = row.get(name, defaults[name])
            if json_field:
                value = adapt_json(value, f.encoder)
            elif isinstance(value, datetime.datetime):
                key = (name, value)
                if key not in memo:
                    memo[key] = f.get_db_prep_save(value, connection)
                value = memo[key]
            values.append(value)
        yield values


def notes_insert(cursor, rows: list[dict]) -> None:
    """INSERT every row (a dict of Note field values; missing ones take their default)."""
    names = [f.name for f in Note._meta.concrete_fields if not f.primary_key]
    table = connection.ops.quote_name(Note._meta.db_table)
    columns = ", ".join(_column(name) for name in names)
    marks = ", ".join(["%s"] * len(names))
    cursor.executemany(
        f"INSERT INTO {table} ({columns}) VALUES ({marks})", list(_params(rows, names))
    )


def notes_update(cursor, rows: list[dict], names: list[str]) -> None:
    """UPDATE the fields `names` of each row's note (by its `id`)."""
    table = connection.ops.quote_name(Note._meta.db_table)
    assignments = ", ".join(f"{_column(name)} = %s" for name in names)
    cursor.executemany(
        f"UPDATE {table} SET {assignments} WHERE {_column('id')} = %s",
        list(_params(rows, [*names, "id"])),
    )
