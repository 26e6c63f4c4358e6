"""The example's own tests, run by `python3 manage.py test` (in the image, against the example's
PostgreSQL and Redis when DATABASE_URL and REDIS_URL are set, SQLite and eager tasks otherwise)."""

import json
import os
import shutil
import tempfile
import time

from django.test import TestCase, override_settings

from app.celery import app as celery_app
from app.celery import stamp_tick

from .models import Job, MediaCheck, Tick
from .tasks import record_tick


class EagerTasks(TestCase):
    """Tasks run in the test process, so a test sees what a worker would write."""

    def setUp(self):
        celery_app.conf.task_always_eager = True
        self.addCleanup(setattr, celery_app.conf, "task_always_eager", False)
        self.media = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.media)


class HealthTests(TestCase):
    def test_health_reports_ok_and_the_version(self):
        r = self.client.get("/health")
        self.assertEqual(r.status_code, 200)
        body = json.loads(r.content)
        self.assertEqual(body["status"], "ok")
        self.assertEqual(body["version"], r["X-App-Version"])


class JobTests(EagerTasks):
    def test_an_enqueued_job_is_done_by_the_task(self):
        r = self.client.post("/jobs?work_ms=5")
        self.assertEqual(r.status_code, 201)
        job = Job.objects.get(pk=json.loads(r.content)["id"])
        self.assertIsNotNone(job.done_at)
        self.assertEqual(job.runs, 1)
        stats = json.loads(self.client.get("/jobs/stats").content)
        self.assertEqual((stats["total"], stats["done"], stats["ran_twice"]), (1, 1, 0))

    def test_jobs_only_accepts_post(self):
        self.assertEqual(self.client.get("/jobs").status_code, 405)


class TickTests(TestCase):
    def test_beat_stamps_its_ticks_with_the_send_time(self):
        body = ((), {}, {})
        before = time.time()
        stamp_tick(sender="jobs.tasks.record_tick", body=body)
        self.assertGreaterEqual(body[1]["sent_at"], before)
        self.assertIn("beat_version", body[1])

    def test_other_tasks_are_left_alone(self):
        body = ((), {}, {})
        stamp_tick(sender="jobs.tasks.process_job", body=body)
        self.assertEqual(body[1], {})

    def test_each_tick_is_one_row(self):
        record_tick(sent_at=10.0, beat_version="v1")
        record_tick(sent_at=12.0, beat_version="v1")
        ticks = json.loads(self.client.get("/ticks").content)["ticks"]
        self.assertEqual([t["sent_at"] for t in ticks], [10.0, 12.0])
        self.assertEqual(Tick.objects.count(), 2)


class MediaTests(EagerTasks):
    def test_an_upload_is_read_back_by_web_and_worker(self):
        with override_settings(MEDIA_ROOT=self.media):
            r = self.client.put("/media/report.txt", b"quarterly numbers", content_type="text/plain")
            self.assertEqual(r.status_code, 201)
            self.assertEqual(self.client.get("/media/report.txt").content, b"quarterly numbers")
            self.assertEqual(self.client.post("/media/report.txt/check").status_code, 202)
        check = MediaCheck.objects.get()
        self.assertEqual((check.name, check.size), ("report.txt", 17))

    def test_a_second_upload_replaces_the_first(self):
        with override_settings(MEDIA_ROOT=self.media):
            self.client.put("/media/a.txt", b"one", content_type="text/plain")
            self.client.put("/media/a.txt", b"two", content_type="text/plain")
            self.assertEqual(self.client.get("/media/a.txt").content, b"two")

    def test_a_missing_file_is_404(self):
        with override_settings(MEDIA_ROOT=self.media):
            self.assertEqual(self.client.get("/media/none.txt").status_code, 404)


class ServiceTests(TestCase):
    """Run in the image on the example's network: the service names resolve and answer."""

    def test_the_broker_answers_by_its_service_name(self):
        if not os.environ.get("REDIS_URL"):
            self.skipTest("REDIS_URL is not set (run in the image on the example's network)")
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=5)

    def test_the_database_is_postgresql_when_configured(self):
        from django.db import connection

        expected = "postgresql" if os.environ.get("DATABASE_URL") else "sqlite"
        self.assertEqual(connection.vendor, expected)
