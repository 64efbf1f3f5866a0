from django.apps import AppConfig


class CurationConfig(AppConfig):
    name = "curation"
    verbose_name = "Curation"

    def ready(self):
        from django_q.signals import post_execute, post_spawn, pre_enqueue, pre_execute

        from curation.engine import recovery

        # Jobs whose task was lost or raised are queued again (see curation/engine/recovery.py).
        pre_enqueue.connect(recovery.on_enqueue, dispatch_uid="curation-job-queued")
        pre_execute.connect(recovery.on_execute, dispatch_uid="curation-job-running")
        post_spawn.connect(recovery.on_worker_spawn, dispatch_uid="curation-resume-on-spawn")
        post_execute.connect(recovery.on_task_done, dispatch_uid="curation-requeue-failed-task")
