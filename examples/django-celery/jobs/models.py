"""What the example's end-to-end test reads back to prove nothing was lost or run twice."""

from django.db import models


class Job(models.Model):
    """One enqueued task. `done_at` is set by the worker; a job never done was lost."""

    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.CharField(max_length=64)
    work_ms = models.PositiveIntegerField(default=0)
    done_at = models.DateTimeField(null=True)
    done_by = models.CharField(max_length=64, blank=True)
    runs = models.PositiveIntegerField(default=0)


class Tick(models.Model):
    """One firing of beat's schedule, with the moment beat sent it and the release beat ran."""

    sent_at = models.FloatField()
    beat_version = models.CharField(max_length=64)
    run_by = models.CharField(max_length=64)
    run_at = models.DateTimeField(auto_now_add=True)


class MediaCheck(models.Model):
    """A worker read an uploaded file from the shared media volume."""

    name = models.CharField(max_length=255)
    size = models.IntegerField()
    checked_by = models.CharField(max_length=64)
    checked_at = models.DateTimeField(auto_now_add=True)
