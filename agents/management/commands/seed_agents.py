from django.core.management.base import BaseCommand

from agents import scoring, team
from agents.models import Agent


class Command(BaseCommand):
    help = (
        "Create the default team of agents (and model prices) where missing, and two scorers "
        "(an LLM judge, a not-empty check) when there is none. Idempotent."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--if-empty", action="store_true", help="only when no agent exists at all"
        )
        parser.add_argument(
            "--no-tools",
            action="store_true",
            help="grant the team no tools (the researcher reads the shared state otherwise)",
        )

    def handle(self, *args, **options) -> None:
        scorers = scoring.ensure_default_scorers()
        if scorers:
            self.stdout.write(f"Created scorers: {', '.join(s.name for s in scorers)}")
        if options["if_empty"] and Agent.objects.exists():
            self.stdout.write("Agents exist already; not seeding.")
            return
        created = team.seed(tools=not options["no_tools"])
        if created:
            self.stdout.write(f"Created agents: {', '.join(created)}")
        else:
            self.stdout.write("The default team is already there.")
