import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator_site.settings")
# Celery's Django fixup runs Django's system checks as a worker starts: a third of a restarted
# worker's start-up CPU, mostly importing every view for the URL checks, which a worker never
# serves. `manage.py migrate` (and `check --deploy`) run them before any worker starts.
# CELERY_SKIP_CHECKS= (empty) brings them back.
os.environ.setdefault("CELERY_SKIP_CHECKS", "1")

app = Celery("orchestrator_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
