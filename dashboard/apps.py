from django.apps import AppConfig


class DashboardConfig(AppConfig):
    name = "dashboard"

    def ready(self) -> None:
        from agents import events

        from . import live

        # The domain announces ids; the web face renders them (agents never imports us).
        events.set_publisher(live.publish)
