"""The Celery app, configured from Django's settings (the CELERY_ names)."""

import os
import time

from celery import Celery
from celery.signals import before_task_publish

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "app.settings")

app = Celery("app")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

TICK_TASK = "jobs.tasks.record_tick"


@before_task_publish.connect
def stamp_tick(sender=None, body=None, **_):
    """Stamp each beat tick with the moment beat sent it and the release beat runs.

    The worker may run a tick late (during a deploy, say), so the time it runs says nothing about
    the schedule; the send time does: two ticks sent less than an interval apart mean two
    schedulers ran at once.
    """
    if sender != TICK_TASK or not body:
        return
    kwargs = body[1]
    kwargs.setdefault("sent_at", time.time())
    kwargs.setdefault(
        "beat_version", os.environ.get("DAVIT_VERSION") or os.environ.get("APP_VERSION", "dev")
    )
