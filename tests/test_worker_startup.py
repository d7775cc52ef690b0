"""A restarted worker is useful sooner: its start-up skips what only the web process needs."""

import os
import subprocess
import sys

from .stack import ROOT

# What Celery's Django fixup runs as a worker starts (WorkController.__init__).
WORKER_INIT = (
    "import sys; from orchestrator_site.celery import app; "
    "from celery.fixups.django import DjangoWorkerFixup; "
    "DjangoWorkerFixup(app).validate_models(); "
    "print('orchestrator_site.urls' in sys.modules)"
)


def worker_init(tmp_path, **env: str) -> str:
    env = {
        **{k: v for k, v in os.environ.items() if k != "CELERY_SKIP_CHECKS"},
        "BATON_VAR_DIR": str(tmp_path),
        **env,
    }
    result = subprocess.run(
        [sys.executable, "-c", WORKER_INIT], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_a_starting_worker_skips_the_system_checks_and_every_view(tmp_path):
    # The checks import the URLconf, hence every view, API and schema module: about a third
    # of a worker's start-up CPU, for pages a worker never serves.
    assert worker_init(tmp_path) == "False"


def test_the_checks_can_be_asked_for_again(tmp_path):
    assert worker_init(tmp_path, CELERY_SKIP_CHECKS="") == "True"
