import json

import app


def test_storefront_answers_with_version():
    code, body = app.storefront()
    assert code == 200
    assert "welcome to the shop" in body


def test_health_reports_version():
    code, body = app.health()
    assert code == 200
    assert json.loads(body)["version"] == app.VERSION


def test_metrics_are_prometheus_text():
    assert app.metrics_text().startswith("# TYPE http_requests_total counter")
