"""A price an admin sets applies at once in this process: a money-budgeted job stops being
refused for the model as soon as the price is saved, not a cache lifetime later."""

from decimal import Decimal

import pytest

from agents import calls
from agents.models import Job, ModelPrice

pytestmark = pytest.mark.django_db

MESSAGES = [{"role": "user", "content": "x" * 400}]


def test_a_new_price_is_seen_at_once(settings):
    settings.LLM_API_KEY = "sk-test"  # the offline model costs nothing: no price needed
    budgeted = Job(title="J", description="d", budget_cost=Decimal("1"))
    with pytest.raises(calls.BudgetExceeded, match="local-llama has no price"):
        calls.allowance(budgeted, "local-llama", MESSAGES, 100)  # read, and cached
    ModelPrice.objects.create(model="local-llama")  # free, as an admin may say
    assert calls.allowance(budgeted, "local-llama", MESSAGES, 100) == 100


def test_a_changed_or_deleted_price_is_seen_at_once(django_capture_on_commit_callbacks):
    price = ModelPrice.objects.create(model="m", input_per_million=Decimal("1"))
    assert ModelPrice.prices_of("m") == (Decimal("1"), Decimal(0))
    with django_capture_on_commit_callbacks(execute=True):
        price.input_per_million = Decimal("2")
        price.save()
    assert ModelPrice.prices_of("m") == (Decimal("2"), Decimal(0))
    price.delete()
    assert ModelPrice.prices_of("m") is None
