from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"
    verbose_name = "Webhooks"

    def ready(self) -> None:
        from agents import events, recovery

        from . import recovery as lost_messages
        from . import triggers

        # Celery finds webhooks.tasks itself (autodiscover_tasks); the moves reach us here.
        events.on_announcements(triggers.on_announcements, durable=triggers.wanted)
        # Each reconcile pass re-sends deliveries whose message was lost.
        recovery.on_pass("deliveries", lost_messages.resend_lost)
