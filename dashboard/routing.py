from django.urls import path, re_path

from .consumers import LiveConsumer, UnknownPathConsumer

websocket_urlpatterns = [
    path("ws/board/", LiveConsumer.as_asgi()),
    path("ws/jobs/<int:job_id>/", LiveConsumer.as_asgi()),
    path("ws/agents/", LiveConsumer.as_asgi(), {"group": "agents"}),
    path("ws/overview/", LiveConsumer.as_asgi(), {"group": "overview"}),
    # Anything else is refused cleanly rather than failing the router with a traceback.
    re_path(r"", UnknownPathConsumer.as_asgi()),
]
