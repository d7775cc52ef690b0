from django.urls import path

from .consumers import LiveConsumer

websocket_urlpatterns = [
    path("ws/board/", LiveConsumer.as_asgi()),
    path("ws/jobs/<int:job_id>/", LiveConsumer.as_asgi()),
    path("ws/agents/", LiveConsumer.as_asgi(), {"group": "agents"}),
]
