"""The curation app's hand-written SQL: each statement here is one the ORM cannot say as fast.

Each function names the benchmark that shows it pays (`bench/sql_bench.py` measures every one
against the ORM doing the same work, in the same run; the rates are in its output). Everything
else goes through the ORM.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import orjson
from django.db import connection, models, transaction
from django.db.models import QuerySet
from django.utils import timezone

from curation.models import Field, Item, NoteVersion, Review, Suggestion
from ingest.models import Note

# Columns an applied outcome sets on its item, in statement order (`id` last, for the WHERE).
OUTCOME_COLUMNS = (
    "state", "error", "result", "usage", "cost", "batch_cost", "finished_at", "updated_at"
)
_OUTCOME_ADAPTED = {"result", "usage", "cost", "batch_cost", "finished_at", "updated_at"}
# Added to what the item already cost: every attempt is billed, and a batch attempt's share is
# kept apart so "saved by batching" counts it even after the item left its batch.
_ADDED = {"cost", "batch_cost"}


def items_set_custom_ids(pairs: list[tuple[str, int]]) -> None:
    """Set `custom_id` of each item id, from (custom_id, item id) pairs, in one executemany.

    bench/sql_bench.py "custom ids": the ORM's bulk_update builds one CASE per row.
    """
    qn = connection.ops.quote_name
    sql = (
        f"UPDATE {qn(Item._meta.db_table)} SET {qn(Item._meta.get_field('custom_id').column)}"
        f" = %s WHERE {qn(Item._meta.pk.column)} = %s"
    )
    with connection.cursor() as cursor:
        cursor.executemany(sql, pairs)


def items_record_outcomes(rows: list[dict]) -> None:
    """Write applied outcomes onto SUBMITTED items: each row holds OUTCOME_COLUMNS and `id`.

    The cost is added to what the item already cost (earlier attempts). An item no longer
    SUBMITTED is left as it is. bench/sql_bench.py "item outcomes": bulk_update has no
    per-row WHERE and no `cost = cost + x`, and builds one CASE per row and column.
    """
    if not rows:
        return
    conn = transaction.get_connection()
    qn = conn.ops.quote_name
    col = {name: qn(Item._meta.get_field(name).column) for name in (*OUTCOME_COLUMNS, "id")}
    if conn.vendor == "postgresql":
        # One UPDATE ... FROM for all rows (bench/batch_bench.py "apply results": 1,595
        # items/s on PostgreSQL with the executemany below, see _recordset).
        sets = ", ".join(
            f"{col[name]} = i.{col[name]} + v.{col[name]}"
            if name in _ADDED
            else f"{col[name]} = v.{col[name]}"
            for name in OUTCOME_COLUMNS
        )
        fields = [Item._meta.get_field(name) for name in (*OUTCOME_COLUMNS, "id")]
        source, param = _recordset(conn, fields, rows)
        # `state || ''` keeps the state a check on each row found by key: as a plain equality
        # PostgreSQL, whose statistics still say "hardly any item is SUBMITTED" while a job is
        # in flight, hashes every SUBMITTED item read by the state index to find these rows
        # (EXPLAIN ANALYZE on the database bench/batch_bench.py leaves, 100,000 items in
        # flight: 110 ms a chunk, against 6 to 15 ms by primary key).
        with conn.cursor() as cursor:
            cursor.execute(
                f"UPDATE {qn(Item._meta.db_table)} AS i SET {sets} FROM {source} "
                f"WHERE i.{col['id']} = v.{col['id']} AND (i.{col['state']} || '') = %s",
                [param, Item.State.SUBMITTED],
            )
        return
    # SQLite runs an executemany as one prepared statement stepped per row, in process.
    sets = ", ".join(
        f"{col[name]} = {col[name]} + %s" if name in _ADDED else f"{col[name]} = %s"
        for name in OUTCOME_COLUMNS
    )
    sql = (
        f"UPDATE {qn(Item._meta.db_table)} SET {sets} "
        f"WHERE {col['id']} = %s AND {col['state']} = %s"
    )
    prep = {name: Item._meta.get_field(name).get_db_prep_save for name in _OUTCOME_ADAPTED}
    memo: dict = {}  # one `now` for every row of a call: adapt it once

    def adapted(name, value):
        if value is None or name not in _OUTCOME_ADAPTED:
            return value
        if name in ("finished_at", "updated_at"):
            if value not in memo:
                memo[value] = prep[name](value, conn)
            return memo[value]
        return prep[name](value, conn)

    params = [
        [adapted(name, row[name]) for name in OUTCOME_COLUMNS] + [row["id"], Item.State.SUBMITTED]
        for row in rows
    ]
    with conn.cursor() as cursor:
        cursor.executemany(sql, params)


def _recordset(conn, fields, rows: list[dict]) -> tuple[str, str]:
    """PostgreSQL: rows as a table `v` with a column per field (named as the field's column),
    from ONE parameter: `jsonb_to_recordset(%s::jsonb)` over the rows as a JSON array.

    An executemany is one statement per row on PostgreSQL (pipelined, but each is parsed,
    planned and run); a multi-row VALUES list has a placeholder per value, and arrays a
    literal per value, which psycopg parses or escapes in Python on every call (both measured
    slower than this in bench/batch_bench.py). Here the rows are one string, escaped in C.
    Values are the model's Python values: JSON fields as they are, decimals and datetimes as
    their text form, which the column's type reads back exactly.
    """
    qn = conn.ops.quote_name
    columns = ", ".join(f"{qn(f.column)} {_pg_type(conn, f)}" for f in fields)
    textual = (models.DecimalField, models.DateTimeField)
    plain = [(f.column, f.attname) for f in fields if not isinstance(f, textual)]
    as_text = [(f.column, f.attname) for f in fields if isinstance(f, textual)]
    # Each distinct value is written out once per call: the rows of a chunk share one `now`
    # and mostly a few costs. bench/batch_bench.py "apply results" encodes 300 suggestions a
    # chunk: 2.8 to 3.2 ms with a JSON `default` call per decimal and datetime, 1.5 to 2.2 here.
    memo: dict = {}

    def text(value):
        if not isinstance(value, (Decimal, datetime)):
            return value  # None, or a number JSON writes as it is
        found = memo.get(value)
        if found is None:
            found = memo[value] = _json_text(value)
        return found

    data = []
    for row in rows:
        values = {column: row[name] for column, name in plain}
        for column, name in as_text:
            values[column] = text(row[name])
        data.append(values)
    # orjson: a fifteenth of json.dumps's time on these rows (0.06 against 0.9 ms a chunk of
    # 100 items and 300 suggestions), and NaN becomes null, which jsonb accepts.
    param = orjson.dumps(data, default=_json_text).decode()
    return f"jsonb_to_recordset(%s::jsonb) AS v ({columns})", param


def _pg_type(conn, field) -> str:
    if field.primary_key:
        return field.rel_db_type(conn)
    if field.is_relation:
        return field.target_field.rel_db_type(conn)
    return field.db_type(conn).split("(")[0]  # varchar, not varchar(16): nothing truncated


def _json_text(value):
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def suggestions_insert(values: list[dict]) -> None:
    """INSERT ... ON CONFLICT DO NOTHING (unique item+field): a second insert changes nothing.

    Columns not given take their model default, computed once per call. bench/sql_bench.py
    "suggestions": bulk_create(ignore_conflicts=True) builds a model instance per row.
    """
    if not values:
        return
    conn = transaction.get_connection()
    qn = conn.ops.quote_name
    fields = [f for f in Suggestion._meta.concrete_fields if not f.primary_key]
    now = timezone.now()
    given = values[0]
    defaults = {
        f.attname: now
        if getattr(f, "auto_now_add", False) or getattr(f, "auto_now", False)
        else f.get_default()
        for f in fields
        if f.attname not in given
    }
    sql = (
        f"INSERT INTO {qn(Suggestion._meta.db_table)} "
        f"({', '.join(qn(f.column) for f in fields)}) "
    )
    if conn.vendor == "postgresql":
        # One statement for all rows (see _recordset).
        source, param = _recordset(conn, fields, [{**defaults, **value} for value in values])
        with conn.cursor() as cursor:
            cursor.execute(
                sql + f"SELECT {', '.join(f'v.{qn(f.column)}' for f in fields)} FROM {source} "
                "ON CONFLICT DO NOTHING",
                [param],
            )
        return
    plain = (models.CharField, models.ForeignKey, models.IntegerField)
    # Per column: a fixed value (a default), the raw value, or the backend's form of it.
    columns = []
    for f in fields:
        if f.attname in defaults:
            columns.append((0, f.attname, f.get_db_prep_save(defaults[f.attname], conn)))
        elif isinstance(f, plain):
            columns.append((1, f.attname, None))
        else:
            columns.append((2, f.attname, f.get_db_prep_save))
    rows = [
        [
            extra if how == 0 else value[name] if how == 1 else extra(value[name], conn)
            for how, name, extra in columns
        ]
        for value in values
    ]
    with conn.cursor() as cursor:
        cursor.executemany(
            sql + f"VALUES ({', '.join(['%s'] * len(fields))}) ON CONFLICT DO NOTHING", rows
        )


def reviews_record_bulk(
    *, suggestions: QuerySet, decision: str, approved: bool, reviewer_id: int, now, comment: str
) -> tuple[int, int]:
    """One Review per suggestion of the queryset, and their state set to `decision`, in two
    set-based statements: (reviews inserted, suggestions updated). Call it in a transaction.

    The `before` value is read from the note in the same statement (its tags, or its
    frontmatter key), and so is the note's content hash (the text decided on). bench/sql_bench.py "bulk decisions": the ORM reads every row into Python
    and writes it back (bench/review_bench.py measures the service end to end).
    """
    quote = connection.ops.quote_name
    if connection.features.has_select_for_update:
        # Lock the rows: a moderator deciding one of them now waits, then gets a conflict.
        # The same id list then names the rows in both statements below.
        ids = list(suggestions.select_for_update().values_list("pk", flat=True))
        if not ids:
            return 0, 0
        where, where_params = "{col} = ANY(%s)", [ids]
    else:
        # SQLite: the transaction holds the only write lock, so the set cannot change.
        subquery, params = suggestions.values("pk").query.sql_with_params()
        where, where_params = "{col} IN (" + subquery + ")", list(params)
    s_table, r_table = Suggestion._meta.db_table, Review._meta.db_table
    n_table = Note._meta.db_table
    insert = (
        f"INSERT INTO {quote(r_table)} "
        f"({quote('suggestion_id')}, {quote('decision')}, {quote('value')}, "
        f"{quote('before')}, {quote('reviewer_id')}, {quote('decided_at')}, "
        f"{quote('comment')}, {quote('note_hash')}, {quote('stale_confirmed')}) "
        f"SELECT s.{quote('id')}, %s, "
        + (f"s.{quote('value')}" if approved else "NULL")
        + f", CASE s.{quote('field')} WHEN %s THEN n.{quote('tags')} "
        f"ELSE n.{quote('frontmatter')} -> s.{quote('field')} END, %s, %s, %s, "
        f"n.{quote('content_hash')}, %s "
        f"FROM {quote(s_table)} s INNER JOIN {quote(n_table)} n "
        f"ON n.{quote('id')} = s.{quote('note_id')} "
        "WHERE " + where.replace("{col}", f"s.{quote('id')}")
    )
    insert_params = [
        decision,
        Field.TAGS.value,
        reviewer_id,
        connection.ops.adapt_datetimefield_value(now),
        comment,
        False,  # a bulk decision never confirms a stale suggestion: those are left out
        *where_params,
    ]
    update = f"UPDATE {quote(s_table)} SET {quote('state')} = %s WHERE " + where.replace(
        "{col}", quote("id")
    )
    with connection.cursor() as cursor:
        cursor.execute(insert, insert_params)
        inserted = cursor.rowcount
        cursor.execute(update, [decision, *where_params])
        updated = cursor.rowcount
    return inserted, updated


def note_versions_insert(note_ids: list[int]) -> None:
    """Keep each note's current text once per content hash: one INSERT ... SELECT ... ON
    CONFLICT DO NOTHING per chunk of a job. The ORM would read every note's text into Python
    and send it back (not yet measured in bench/sql_bench.py)."""
    if not note_ids:
        return
    qn = connection.ops.quote_name
    v_table, n_table = NoteVersion._meta.db_table, Note._meta.db_table
    marks = ", ".join(["%s"] * len(note_ids))
    sql = (
        f"INSERT INTO {qn(v_table)} ({qn('note_id')}, {qn('content_hash')}, "
        f"{qn('frontmatter_raw')}, {qn('body')}, {qn('created_at')}) "
        f"SELECT {qn('id')}, {qn('content_hash')}, {qn('frontmatter_raw')}, {qn('body')}, %s "
        f"FROM {qn(n_table)} WHERE {qn('id')} IN ({marks}) AND {qn('content_hash')} <> '' "
        "ON CONFLICT DO NOTHING"
    )
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(sql, [now, *note_ids])


def vault_tags_distinct(*, vault_id: int) -> set[str]:
    """Every tag the vault's curatable notes carry, each once, unnested by the database.

    bench/admin_bench.py "review queue": reading every note's tag list into Python (to know
    which suggested tags are new) took 1 to 2 s at 100,000 notes; the distinct tags are a few
    thousand rows at most. A `tags` value that is not a list counts as no tags, as it does
    where the notes' tags are read one by one.
    """
    qn = connection.ops.quote_name
    table = qn(Note._meta.db_table)
    tags, vault, state = (qn(Note._meta.get_field(f).column) for f in ("tags", "vault", "state"))
    if connection.vendor == "postgresql":
        sql = (
            f"SELECT DISTINCT t.value FROM {table} n CROSS JOIN LATERAL "
            f"jsonb_array_elements_text(CASE WHEN jsonb_typeof(n.{tags}) = 'array' "
            f"THEN n.{tags} ELSE '[]'::jsonb END) AS t(value) "
            f"WHERE n.{vault} = %s AND n.{state} = %s"
        )
    elif connection.vendor == "sqlite":
        sql = (
            f"SELECT DISTINCT j.value FROM {table} n, json_each(CASE WHEN "
            f"json_valid(n.{tags}) AND json_type(n.{tags}) = 'array' THEN n.{tags} ELSE '[]' END) j "
            f"WHERE n.{vault} = %s AND n.{state} = %s"
        )
    else:  # any other database: read the lists
        found: set[str] = set()
        rows = Note.objects.filter(vault_id=vault_id, state=Note.State.OK).values_list("tags")
        for (value,) in rows.iterator(chunk_size=5000):
            if isinstance(value, list):
                found.update(str(t) for t in value if t is not None)
        return found
    with connection.cursor() as cursor:
        cursor.execute(sql, [vault_id, Note.State.OK])
        return {str(value) for (value,) in cursor.fetchall() if value is not None}


def suggestions_supersede_notes(*, note_ids: list[int]) -> int:
    """PostgreSQL form of review.decisions.suggestions_supersede for the suggestions of
    `note_ids`: a pending suggestion is superseded when its note and field have an edited one
    or a newer one. Returns how many changed.

    The ORM's EXISTS form is planned from table statistics, and right after a job's first
    thousands of suggestions are stored (before autovacuum analyzes the table) the planner
    takes `state = 'pending'` for selective and scans every suggestion once per chunk:
    bench/batch_bench.py "apply results" on PostgreSQL spent 80% of its time there. Here each
    note's suggestions are read by the note_id index (LATERAL, OFFSET 0 keeps it a per-note
    loop), whatever the statistics say.
    """
    if not note_ids:
        return 0
    qn = connection.ops.quote_name
    table = qn(Suggestion._meta.db_table)
    pending, edited = Suggestion.State.PENDING, Suggestion.State.EDITED
    sql = (
        f"UPDATE {table} SET {qn('state')} = %s FROM ("
        "SELECT s.id FROM unnest(%s::bigint[]) AS n(note_id) CROSS JOIN LATERAL ("
        f"SELECT x.{qn('id')} AS id, x.{qn('state')} AS state, "
        f"max(x.{qn('id')}) OVER w AS newest, bool_or(x.{qn('state')} = %s) OVER w AS edited "
        f"FROM {table} x WHERE x.{qn('note_id')} = n.note_id "
        f"WINDOW w AS (PARTITION BY x.{qn('field')}) OFFSET 0) s "
        "WHERE s.state = %s AND (s.edited OR s.id < s.newest)) AS d "
        f"WHERE {table}.{qn('id')} = d.id AND {table}.{qn('state')} = %s"
    )
    # Without statistics the planner guesses hundreds of rows per note, and the guessed cost
    # crosses jit_above_cost: JIT is off for every connection (vaultcms/apps.py).
    with connection.cursor() as cursor:
        cursor.execute(
            sql, [Suggestion.State.SUPERSEDED, sorted(set(note_ids)), edited, pending, pending]
        )
        return cursor.rowcount
