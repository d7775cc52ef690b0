import asyncio
import os

from django.conf import settings
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator_site.settings")
# Django must be set up before the consumers (and their models) are imported.
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.urls import re_path  # noqa: E402

from agents import telemetry  # noqa: E402
from dashboard import live  # noqa: E402
from dashboard.routing import websocket_urlpatterns  # noqa: E402
from stream.routing import http_urlpatterns as event_streams  # noqa: E402

router = ProtocolTypeRouter(
    {
        # The event streams hold their clients on the loop, without Django's thread each.
        "http": URLRouter([*event_streams, re_path(r"", django_asgi_app)]),
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
        ),
    }
)


if settings.REDIS_URL:
    live.start_renderer()  # this web process renders what every process announces
live.start_heartbeat()  # and tells its pages' groups, every few seconds, what they should have
# Counters of workers that are gone since the last start leave the metrics directory.
telemetry.forget_dead_processes()


async def application(scope, receive, send):
    if scope["type"] != "lifespan":
        live.bind_event_loop(asyncio.get_running_loop())
    return await router(scope, receive, send)
