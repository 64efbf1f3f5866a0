from django.apps import AppConfig


class CurationConfig(AppConfig):
    name = "curation"
    verbose_name = "Curation"

    def ready(self):
        from django_q.signals import post_spawn

        from curation.recovery import on_worker_spawn

        # A worker that starts queues unfinished jobs again (see curation/recovery.py).
        post_spawn.connect(on_worker_spawn, dispatch_uid="curation-resume-on-spawn")
