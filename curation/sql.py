"""The curation app's hand-written SQL: each statement here is one the ORM cannot say as fast.

Each function names the benchmark that shows it pays (`bench/sql_bench.py` measures every one
against the ORM doing the same work, in the same run; the rates are in its output). Everything
else goes through the ORM.
"""

from __future__ import annotations

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
    plain = (models.CharField, models.ForeignKey, models.IntegerField)
    given = values[0]
    # Per column: a fixed value (a default), the raw value, or the backend's form of it.
    columns = []
    for f in fields:
        if f.attname not in given:
            stamped = getattr(f, "auto_now_add", False) or getattr(f, "auto_now", False)
            fixed = f.get_db_prep_save(now if stamped else f.get_default(), conn)
            columns.append((0, f.attname, fixed))
        elif isinstance(f, plain):
            columns.append((1, f.attname, None))
        else:
            columns.append((2, f.attname, f.get_db_prep_save))
    sql = (
        f"INSERT INTO {qn(Suggestion._meta.db_table)} "
        f"({', '.join(qn(f.column) for f in fields)}) "
        f"VALUES ({', '.join(['%s'] * len(fields))}) ON CONFLICT DO NOTHING"
    )
    rows = [
        [
            extra if how == 0 else value[name] if how == 1 else extra(value[name], conn)
            for how, name, extra in columns
        ]
        for value in values
    ]
    with conn.cursor() as cursor:
        cursor.executemany(sql, rows)


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
