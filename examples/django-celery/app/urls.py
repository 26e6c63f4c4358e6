from django.urls import path

from jobs import views

urlpatterns = [
    path("", views.index),
    path("health", views.health),
    path("jobs", views.jobs),
    path("jobs/stats", views.job_stats),
    path("ticks", views.ticks),
    path("media/<str:name>", views.media),
    path("media/<str:name>/check", views.media_check),
    path("media-checks", views.media_checks),
]
