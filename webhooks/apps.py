from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"
    verbose_name = "Webhooks"

    def ready(self) -> None:
        from agents import events

        from . import triggers

        # Celery finds webhooks.tasks itself (autodiscover_tasks); the moves reach us here.
        events.on_announcements(triggers.on_announcements, durable=triggers.wanted)
