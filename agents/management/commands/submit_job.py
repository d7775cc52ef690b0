import json
import time

from django.core.management.base import BaseCommand, CommandError

from agents import actions
from agents.models import JOB_TERMINAL, Job


class Command(BaseCommand):
    help = "Submit a job; prints its id. With --wait, blocks until it ends and prints it as JSON."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--title", required=True)
        parser.add_argument("--description", required=True)
        parser.add_argument("--priority", type=int, default=5, help="0 (highest) to 9; default 5")
        parser.add_argument("--wait", action="store_true", help="wait until the job is terminal")
        parser.add_argument("--timeout", type=float, default=3600, help="seconds to wait at most")

    def handle(self, *args, **options) -> None:
        if not 0 <= options["priority"] <= 9:
            raise CommandError("--priority must be between 0 (highest) and 9")
        title, description = options["title"].strip(), options["description"].strip()
        if not title or not description:
            raise CommandError("--title and --description must not be empty")
        job = actions.submit_job(
            title=title[:200], description=description, priority=options["priority"]
        )
        self.stdout.write(str(job.pk))
        if not options["wait"]:
            return
        deadline = time.monotonic() + options["timeout"]
        while job.status not in JOB_TERMINAL:
            if time.monotonic() > deadline:
                raise CommandError(f"job {job.pk} is still {job.status} after --timeout")
            time.sleep(0.2)
            job = Job.objects.get(pk=job.pk)
        summary = {
            "id": job.pk,
            "status": job.status,
            "result": job.result,
            "error": job.error,
            "tokens": job.total_tokens,
            "cost": str(job.total_cost),
            "elapsed_s": round(job.elapsed_s, 3),
        }
        self.stdout.write(json.dumps(summary))
