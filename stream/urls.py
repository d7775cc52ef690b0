from django.urls import path

from . import views

urlpatterns = [
    path("events", views.all_events, name="api-events"),
    path("jobs/<int:job_id>/events", views.job_events, name="api-job-events"),
]
