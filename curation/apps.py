from django.apps import AppConfig


class CurationConfig(AppConfig):
    name = "curation"
    verbose_name = "Curation"

    def ready(self):
        from django_q.signals import post_spawn

        from curation import operations
        from curation.engine import tasks

        # Each worker sweeps as it starts: jobs whose lease lapsed are queued again at once
        # (curation/engine/tasks.py; its Schedule repeats the sweep while workers run).
        post_spawn.connect(tasks.on_worker_spawn, dispatch_uid="curation-sweep-on-spawn")
        post_spawn.connect(
            operations.on_worker_spawn, dispatch_uid="curation-operations-sweep-on-spawn"
        )
