from django.apps import AppConfig


class AgentsConfig(AppConfig):
    name = "agents"
    verbose_name = "Agents and jobs"

    def ready(self) -> None:
        from django.db.models.signals import post_save

        from . import signals
        from .models import Job, LLMCall

        post_save.connect(signals.job_created, sender=Job, dispatch_uid="agents-job-created")
        post_save.connect(signals.call_recorded, sender=LLMCall, dispatch_uid="agents-call")
