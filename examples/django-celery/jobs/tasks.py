"""The worker's tasks. Each writes to the database, so the test reads the outcome from there."""

import time

from celery import shared_task
from django.conf import settings
from django.core.files.storage import default_storage
from django.db.models import F
from django.utils import timezone

from .models import Job, MediaCheck, Tick


@shared_task
def process_job(job_id):
    """Do a job's work (a sleep of `work_ms`, standing in for real work) and mark it done.

    Idempotent: a job re-delivered after a worker was stopped mid-task is marked done again, and
    `runs` counts how often it ran.
    """
    job = Job.objects.get(pk=job_id)
    time.sleep(job.work_ms / 1000)
    Job.objects.filter(pk=job_id).update(
        done_at=timezone.now(), done_by=settings.VERSION, runs=F("runs") + 1
    )


@shared_task
def record_tick(sent_at=None, beat_version=""):
    """Beat's schedule: one row per firing (`sent_at` is stamped by beat, see app/celery.py)."""
    Tick.objects.create(
        sent_at=sent_at if sent_at is not None else time.time(),
        beat_version=beat_version,
        run_by=settings.VERSION,
    )


@shared_task
def check_media(name):
    """Read an uploaded file from the media volume the worker shares with the web process."""
    with default_storage.open(name, "rb") as f:
        size = len(f.read())
    MediaCheck.objects.create(name=name, size=size, checked_by=settings.VERSION)
