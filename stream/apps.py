from django.apps import AppConfig


class StreamConfig(AppConfig):
    name = "stream"
    verbose_name = "Event stream"

    def ready(self) -> None:
        from agents import events

        from . import feed, readers

        # Every process feeds the stream; the web processes serve it (stream.consumers). While
        # some stream is open, every announcement also goes through the outbox.
        events.on_announcements(feed.append, durable=readers.present)
