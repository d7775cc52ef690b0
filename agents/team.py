"""The default team (DESIGN.md) and default model prices.

Specialties are stored as subtask types are named (agents.planning.TYPE_SYNONYMS): DESIGN.md's
"research, analysis" is "research", "coding, implementation" is "coding", "review, quality"
is "review".
"""

from decimal import Decimal

from .models import Agent, ModelPrice

DEFAULT_TEAM = [
    {
        "slug": "orchestrator",
        "name": "Orchestrator",
        "specialties": ["orchestration", "planning"],
        "model": "gpt-4.1",
        "temperature": 0.3,
        "system_prompt": "You are the orchestrator of a team of specialist agents. You plan jobs "
        "and compose the team's results into one clear answer.",
    },
    {
        "slug": "researcher",
        "name": "Researcher",
        "specialties": ["research"],
        "model": "gpt-4.1-mini",
        "system_prompt": "You are a careful researcher. Gather the facts the job needs, say "
        "what is known and what is uncertain, and cite your reasoning.",
    },
    {
        "slug": "coder",
        "name": "Coder",
        "specialties": ["coding"],
        "model": "gpt-4.1-mini",
        "system_prompt": "You are a senior software engineer. Write correct, readable code "
        "with brief explanations, building on your teammates' findings.",
    },
    {
        "slug": "reviewer",
        "name": "Reviewer",
        "specialties": ["review"],
        "model": "gpt-4.1-mini",
        "system_prompt": "You are a demanding reviewer. Check the work for errors, risks and "
        "gaps, and say concretely what to change.",
    },
]

# Tools the default team is granted when seeded for use (`seed_agents`): the researcher reads
# the job's shared state, so a new user sees a tool call in a job's trace. Tests and the
# bench seed the team without them (one call per subtask; the hot path with tools off).
DEFAULT_TOOLS = {"researcher": ["read_state"]}

# USD per million tokens (input, output); editable in admin.
DEFAULT_PRICES = {
    "gpt-4.1": (Decimal("2.00"), Decimal("8.00")),
    "gpt-4.1-mini": (Decimal("0.40"), Decimal("1.60")),
}


def seed(*, tools: bool = False) -> list[str]:
    """Create the default agents (with DEFAULT_TOOLS granted when `tools`) and prices where
    missing; return the slugs created."""
    created = []
    for spec in DEFAULT_TEAM:
        if tools and spec["slug"] in DEFAULT_TOOLS:
            spec = {**spec, "tools": DEFAULT_TOOLS[spec["slug"]]}
        _, was_created = Agent.objects.get_or_create(slug=spec["slug"], defaults=spec)
        if was_created:
            created.append(spec["slug"])
    for model, (prompt, completion) in DEFAULT_PRICES.items():
        ModelPrice.objects.get_or_create(
            model=model, defaults={"input_per_million": prompt, "output_per_million": completion}
        )
    return created
