from django.apps import AppConfig


class CurationConfig(AppConfig):
    name = "curation"
    verbose_name = "Curation"

    def ready(self):
        from django_q.signals import post_execute, post_spawn

        from curation.recovery import on_task_done, on_worker_spawn

        # Jobs whose task was lost or raised are queued again (see curation/recovery.py).
        post_spawn.connect(on_worker_spawn, dispatch_uid="curation-resume-on-spawn")
        post_execute.connect(on_task_done, dispatch_uid="curation-requeue-failed-task")
