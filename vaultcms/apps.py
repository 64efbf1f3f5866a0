"""The project itself as an app: creates the database cache table on every `migrate`."""

from django.apps import AppConfig
from django.db.models.signals import post_migrate


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
