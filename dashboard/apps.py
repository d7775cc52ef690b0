from django.apps import AppConfig


class DashboardConfig(AppConfig):
    name = "dashboard"

    def ready(self) -> None:
        from django.conf import settings

        from agents import events, streaming

        from . import live

        # The domain announces ids; the web face renders them (agents never imports us):
        # in a web process's renderer where Redis carries the batches, else right here.
        events.set_publisher(live.forward if settings.REDIS_URL else live.publish)
        # A running subtask's streamed text goes straight to its job's group: nothing to render.
        streaming.set_sender(live.send_text)
