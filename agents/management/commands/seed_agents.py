from django.core.management.base import BaseCommand

from agents import team


class Command(BaseCommand):
    help = "Create the default team of agents (and model prices) where missing. Idempotent."

    def handle(self, *args, **options) -> None:
        created = team.seed()
        if created:
            self.stdout.write(f"Created agents: {', '.join(created)}")
        else:
            self.stdout.write("The default team is already there.")
