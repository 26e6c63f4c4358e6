"""Settings from the environment, as davit and docker-compose pass them.

DATABASE_URL (postgresql://user:password@host:port/name) and REDIS_URL name the services by their
Docker network names (`postgres`, `redis`). Without DATABASE_URL the app uses SQLite in memory, so
`manage.py test` runs anywhere.
"""

import os
from pathlib import Path
from urllib.parse import unquote, urlparse

BASE_DIR = Path(__file__).resolve().parent.parent
VERSION = os.environ.get("DAVIT_VERSION") or os.environ.get("APP_VERSION", "dev")

# Not a secret worth protecting in an example with no sessions or logins; a real app reads it from
# a secret the deploy passes.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-secret")
DEBUG = os.environ.get("DJANGO_DEBUG") == "1"
ALLOWED_HOSTS = ["*"]

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "jobs",
]
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
ROOT_URLCONF = "app.urls"
WSGI_APPLICATION = "app.wsgi.application"
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"


def database(url):
    """Django's DATABASES entry for a postgresql:// URL (what the compose file passes)."""
    if not url:
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}
    u = urlparse(url)
    if u.scheme not in ("postgres", "postgresql"):
        raise ValueError(f"DATABASE_URL must be postgresql://...; got scheme {u.scheme!r}")
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": u.path.lstrip("/"),
        "USER": unquote(u.username or ""),
        "PASSWORD": unquote(u.password or ""),
        "HOST": u.hostname or "",
        "PORT": str(u.port or 5432),
        "CONN_MAX_AGE": 60,
    }


DATABASES = {"default": database(os.environ.get("DATABASE_URL"))}

# Uploads live on a volume shared by web and worker (`media` in docker-compose.prod.yml), so a file
# uploaded through the web is readable by a task, and survives every deploy and rollback.
MEDIA_ROOT = os.environ.get("MEDIA_ROOT", str(BASE_DIR / "media"))

CELERY_BROKER_URL = os.environ.get("REDIS_URL", "redis://localhost:6379/0")
# A task is acknowledged when it finishes, not when it starts, one at a time per process: a worker
# stopped mid-task (past its grace period) leaves the task in the queue for the next worker, so a
# deploy never loses one.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 120}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_IGNORE_RESULT = True
# How often beat records a tick; each tick is one row, so "fired twice for one tick" is checkable.
BEAT_INTERVAL = float(os.environ.get("BEAT_INTERVAL", "2"))
CELERY_BEAT_SCHEDULE = {
    "record-tick": {"task": "jobs.tasks.record_tick", "schedule": BEAT_INTERVAL},
}
