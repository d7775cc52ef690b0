from django.urls import path

from .consumers import event_stream

# Routed before Django's own app (orchestrator_site/asgi.py). No AuthMiddlewareStack: its
# session lookup would run on Channels' one shared thread; stream.access reads the session.
http_urlpatterns = [
    path("api/v1/events", event_stream),
    path("api/v1/jobs/<int:job_id>/events", event_stream),
]
