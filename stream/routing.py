from channels.auth import AuthMiddlewareStack
from django.urls import path

from .consumers import event_stream

# Routed before Django's own app (orchestrator_site/asgi.py); the session, as for sockets.
http_urlpatterns = [
    path("api/v1/events", AuthMiddlewareStack(event_stream)),
    path("api/v1/jobs/<int:job_id>/events", AuthMiddlewareStack(event_stream)),
]
