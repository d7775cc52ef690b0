"""LLM-call recording (agents/calls.py). Budgets are checked before each call with the prompt's
estimated tokens, a call asks for no more than what is left, and a money budget cannot be
passed through a model with no price (the offline model needs none)."""

from decimal import Decimal

import pytest

from agents import calls, tokens
from agents.calls import BudgetExceeded
from agents.models import Agent, Job, LLMCall, ModelPrice

pytestmark = pytest.mark.django_db

MESSAGES = [{"role": "user", "content": "x" * 400}]  # 100 tokens, estimated
PROMPT = tokens.estimate_tokens(tokens.messages_text(MESSAGES))


def job(**budgets) -> Job:
    return Job(title="J", description="d", **budgets)


def test_a_call_asks_for_no_more_tokens_than_the_budget_has_left():
    budgeted = job(budget_tokens=1000, total_tokens=600)
    assert calls.allowance(budgeted, "m", MESSAGES, 2048) == 1000 - 600 - PROMPT
    assert calls.allowance(job(), "m", MESSAGES, 2048) == 2048


def test_a_prompt_that_does_not_fit_what_is_left_is_never_sent(simulator):
    agent = Agent.objects.create(name="A", slug="a", specialties=["coding"])
    budgeted = Job.objects.create(title="J", description="d", budget_tokens=PROMPT + 50)
    Job.objects.filter(pk=budgeted.pk).update(total_tokens=60)

    with pytest.raises(BudgetExceeded):
        calls.call_llm(agent=agent, job_id=budgeted.pk, purpose="plan", messages=MESSAGES)
    assert simulator.stats.snapshot()["requests"] == 0
    assert not LLMCall.objects.exists()


def test_a_money_budget_caps_the_completion_at_the_models_price(settings):
    settings.LLM_API_KEY = "sk-test"
    ModelPrice.objects.create(
        model="priced", input_per_million=Decimal("10"), output_per_million=Decimal("20")
    )
    budgeted = job(budget_cost=Decimal("0.01"), total_cost=Decimal("0.005"))
    # $0.005 left, the prompt costs 100 × $10 / 1M = $0.001: $0.004 buys 200 output tokens.
    assert calls.allowance(budgeted, "priced", MESSAGES, 2048) == 200


def test_a_money_budget_refuses_a_model_with_no_price(settings, simulator):
    agent = Agent.objects.create(name="A", slug="a", specialties=["coding"], model="unpriced-x")
    budgeted = Job.objects.create(title="J", description="d", budget_cost=Decimal("5"))

    with pytest.raises(BudgetExceeded, match="unpriced-x has no price"):
        calls.call_llm(agent=agent, job_id=budgeted.pk, purpose="plan", messages=MESSAGES)
    assert simulator.stats.snapshot()["requests"] == 0
    # A token budget alone does not need a price.
    assert calls.allowance(job(budget_tokens=10_000), "unpriced-x", MESSAGES, 50) == 50


def test_the_offline_model_needs_no_price(settings):
    settings.LLM_API_KEY = ""
    budgeted = Job(title="J", description="d", budget_cost=Decimal("1"))
    assert calls.allowance(budgeted, "no-such-price", MESSAGES, 100) == 100
