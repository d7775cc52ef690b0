from django.apps import AppConfig


class AgentsConfig(AppConfig):
    name = "agents"
    verbose_name = "Agents and jobs"

    def ready(self) -> None:
        # Imported here, not above: the models (and what imports them) load only once the
        # app registry is ready, which is why Django calls this method.
        from django.db.models.signals import post_migrate, post_save

        from . import events, experiments, hotpath, outbox, quality, recovery, signals
        from .models import Agent, Job, LLMCall

        # A durable announcement is written to the outbox (which imports the models, which
        # import events: events cannot import it, so it is told here).
        events.keep_with(outbox.write, outbox.forget)
        # The hot path's SQL functions, as this code calls them (agents.hotpath).
        post_migrate.connect(hotpath.install, sender=self, dispatch_uid="agents-hotpath")
        post_save.connect(signals.agent_created, sender=Agent, dispatch_uid="agents-agent")
        post_save.connect(signals.job_created, sender=Job, dispatch_uid="agents-job-created")
        post_save.connect(signals.call_recorded, sender=LLMCall, dispatch_uid="agents-call")
        experiments.register()
        quality.register()
        recovery.on_pass("quality", quality.check_drops_due)  # a layer above quality
