from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Serve Baton in one process: Daphne plus an in-process Celery worker on threads."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--concurrency", type=int, default=16, help="worker threads")

    def handle(self, *args, **options) -> None:
        if settings.REDIS_URL:
            raise CommandError(
                "REDIS_URL is set: run Daphne and `celery -A orchestrator_site worker` "
                "as separate processes instead (see README, production mode)."
            )
        from daphne.server import Server

        from orchestrator_site.asgi import application
        from orchestrator_site.standalone import start_worker

        start_worker(options["concurrency"])
        url = f"http://{options['host']}:{options['port']}/"
        self.stdout.write(f"Baton (standalone) serving on {url}", ending="\n")
        self.stdout.flush()
        Server(
            application=application,
            endpoints=[f"tcp:port={options['port']}:interface={options['host']}"],
            signal_handlers=True,
        ).run()
