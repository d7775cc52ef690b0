from django.apps import AppConfig


class StreamConfig(AppConfig):
    name = "stream"
    verbose_name = "Event stream"

    def ready(self) -> None:
        from django.db.models.signals import post_save

        from agents import events
        from agents.models import Job, LLMCall

        from . import feed, readers, signals

        # Every process feeds the stream; the web processes serve it (stream.consumers). While
        # some stream is open, every announcement also goes through the outbox.
        events.on_announcements(feed.append, durable=readers.present)
        post_save.connect(signals.job_created, sender=Job, dispatch_uid="stream-job-created")
        post_save.connect(signals.call_recorded, sender=LLMCall, dispatch_uid="stream-call")
