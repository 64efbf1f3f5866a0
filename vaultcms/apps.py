"""The project itself as an app: creates the database cache table on every `migrate`, and
sets up each new PostgreSQL connection."""

from django.apps import AppConfig
from django.db.backends.signals import connection_created
from django.db.models.signals import post_migrate


def _postgresql_session(sender, connection, **kwargs):
    """JIT off for the connection's session: no statement here gains from it, and without
    table statistics (a job's first minutes, before autovacuum analyzes) the planner guesses
    costs above jit_above_cost, and compiling took 15 of a 20 ms statement
    (curation/sql.py suggestions_supersede_notes, bench/batch_bench.py). Once per
    connection rather than a `SET LOCAL` in every transaction."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET jit = off")


def _create_cache_tables(sender, using="default", **kwargs):
    # post_migrate is sent once per app that has models (this one has none), so this runs a
    # few times per migrate: `createcachetable` skips caches that are not database caches
    # and tables that already exist, so every run after the first is one introspection.
    from django.core.management import call_command

    call_command("createcachetable", database=using, verbosity=0)


class VaultcmsConfig(AppConfig):
    name = "vaultcms"
    verbose_name = "VaultCMS"

    def ready(self):
        post_migrate.connect(_create_cache_tables, dispatch_uid="vaultcms-cache-table")
        connection_created.connect(_postgresql_session, dispatch_uid="vaultcms-pg-session")
