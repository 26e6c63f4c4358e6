"""HTTP endpoints: health, enqueue a job, job and tick counts, media upload and read."""

import json

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection
from django.db.models import Count
from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from .models import Job, MediaCheck, Tick
from .tasks import check_media, process_job


def versioned(response):
    response["X-App-Version"] = settings.VERSION
    return response


def index(request):
    return versioned(HttpResponse(f"hello from {settings.VERSION}\n", content_type="text/plain"))


def health(request):
    """What davit's health gate reads: 200 with the version once the database answers."""
    try:
        with connection.cursor() as c:
            c.execute("SELECT 1")
    except Exception as e:  # the database is the one dependency the web cannot serve without
        return versioned(
            JsonResponse({"status": "failing", "version": settings.VERSION, "error": str(e)}, status=503)
        )
    return versioned(JsonResponse({"status": "ok", "version": settings.VERSION}))


@csrf_exempt
def jobs(request):
    """POST: record a job and enqueue it (`?work_ms=` how long the task works)."""
    if request.method != "POST":
        return HttpResponse(status=405)
    job = Job.objects.create(
        created_by=settings.VERSION, work_ms=int(request.GET.get("work_ms", "0"))
    )
    process_job.delay(job.id)
    return versioned(JsonResponse({"id": job.id}, status=201))


def job_stats(request):
    done = Job.objects.filter(done_at__isnull=False)
    return versioned(
        JsonResponse(
            {
                "total": Job.objects.count(),
                "done": done.count(),
                "ran_twice": Job.objects.filter(runs__gt=1).count(),
                "done_by": {r["done_by"]: r["n"] for r in done.values("done_by").annotate(n=Count("id"))},
            }
        )
    )


def ticks(request):
    rows = Tick.objects.order_by("sent_at").values("sent_at", "beat_version", "run_by")
    return versioned(
        JsonResponse({"interval": settings.BEAT_INTERVAL, "ticks": list(rows)})
    )


@csrf_exempt
def media(request, name):
    """PUT stores the body as media/<name> (replacing it); GET returns it."""
    if request.method == "PUT":
        if default_storage.exists(name):
            default_storage.delete(name)
        stored = default_storage.save(name, ContentFile(request.body))
        return versioned(JsonResponse({"name": stored, "size": len(request.body)}, status=201))
    if request.method == "GET":
        if not default_storage.exists(name):
            return versioned(HttpResponse(status=404))
        with default_storage.open(name, "rb") as f:
            return versioned(HttpResponse(f.read(), content_type="application/octet-stream"))
    return HttpResponse(status=405)


@csrf_exempt
def media_check(request, name):
    """POST: ask a worker to read media/<name>; the result appears in /media-checks."""
    if request.method != "POST":
        return HttpResponse(status=405)
    check_media.delay(name)
    return versioned(JsonResponse({"queued": name}, status=202))


def media_checks(request):
    rows = MediaCheck.objects.order_by("id").values("name", "size", "checked_by")
    return versioned(JsonResponse({"checks": list(rows)}))
