"""LangGraph peer: a StateGraph per job, durable in SQLite, as a new LangGraph user writes it.

plan → dispatch ⇢ subtask (one Send per ready subtask) → dispatch ⇢ … → synthesize. The
plan node asks the orchestrator model and parses the plan JSON; dispatch sends every
subtask whose dependencies have answered, in parallel, and moves on to synthesis once all
have. Each job is its own thread_id in an AsyncSqliteSaver (checkpoints after every step,
LangGraph's default durability); all jobs run at once, and an asyncio.Semaphore(cap)
around the model calls bounds the calls in flight. Models are langchain-openai ChatOpenAI.
"""

from __future__ import annotations

import asyncio
import operator
from typing import Annotated, TypedDict

import common
from langchain_openai import ChatOpenAI
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Send


class JobState(TypedDict, total=False):
    job: dict
    plan: list[dict]
    results: Annotated[dict[str, str], operator.or_]
    answer: str


class SubtaskInput(TypedDict):
    job: dict
    subtask: dict
    upstream: list[tuple[dict, str]]


def build_graph(
    workload: dict, base_url: str, api_key: str, cap: int
) -> tuple[StateGraph, list[int]]:
    """The job graph, and a one-item list counting the model calls made."""
    slots = asyncio.Semaphore(cap)
    models = {
        a["slug"]: ChatOpenAI(
            model=a["model"],
            temperature=a["temperature"],
            max_tokens=a["max_tokens"],
            base_url=base_url,
            api_key=api_key,
            timeout=120,
        )
        for a in workload["agents"]
    }
    lead = common.orchestrator(workload)
    planner = models[lead["slug"]].bind(temperature=workload["plan_temperature"])
    calls = [0]

    async def ask(model, messages: list[dict]) -> str:
        async with slots:
            reply = await model.ainvoke(messages)
        calls[0] += 1
        return reply.content

    async def plan(state: JobState) -> JobState:
        answer = await ask(planner, state["job"]["plan_messages"])
        return {"plan": common.parse_plan(answer), "results": {}}

    def dispatch(state: JobState) -> JobState:
        return {}

    def next_steps(state: JobState) -> list[Send] | str:
        done = state["results"]
        if len(done) == len(state["plan"]):
            return "synthesize"
        by_id = {s["id"]: s for s in state["plan"]}
        return [
            Send(
                "subtask",
                {
                    "job": state["job"],
                    "subtask": s,
                    "upstream": [(by_id[d], done[d]) for d in s["depends_on"]],
                },
            )
            for s in state["plan"]
            if s["id"] not in done and all(d in done for d in s["depends_on"])
        ]

    async def subtask(task: SubtaskInput) -> JobState:
        sub = task["subtask"]
        agent = common.agent_for(workload, sub)
        messages = common.subtask_messages(workload, task["job"], sub, agent, task["upstream"])
        return {"results": {sub["id"]: await ask(models[agent["slug"]], messages)}}

    async def synthesize(state: JobState) -> JobState:
        done = [(s, state["results"][s["id"]]) for s in state["plan"]]
        messages = common.synthesis_messages(workload, state["job"], done)
        return {"answer": await ask(models[lead["slug"]], messages)}

    graph = StateGraph(JobState)
    graph.add_node("plan", plan)
    graph.add_node("dispatch", dispatch)
    graph.add_node("subtask", subtask)
    graph.add_node("synthesize", synthesize)
    graph.add_edge(START, "plan")
    graph.add_edge("plan", "dispatch")
    graph.add_conditional_edges("dispatch", next_steps, ["subtask", "synthesize"])
    graph.add_edge("subtask", "dispatch")
    graph.add_edge("synthesize", END)
    return graph, calls


async def main() -> None:
    args = common.arguments(__doc__.splitlines()[0])
    workload = common.load(args.workload)
    db = args.work_dir / "langgraph-checkpoints.sqlite"
    for path in db.parent.glob(db.name + "*"):
        path.unlink()
    graph, calls = build_graph(workload, args.base_url, args.api_key, args.cap)
    async with AsyncSqliteSaver.from_conn_string(str(db)) as saver:
        app = graph.compile(checkpointer=saver)
        with common.Meter(args.provider_pid) as meter:
            finals = await asyncio.gather(
                *(
                    app.ainvoke({"job": job}, {"configurable": {"thread_id": f"job-{i}"}})
                    for i, job in enumerate(workload["jobs"])
                ),
                return_exceptions=True,
            )
        # Durable: the last job's answer reads back from the checkpointer.
        stored = await app.aget_state({"configurable": {"thread_id": f"job-{len(finals) - 1}"}})
    completed = sum(isinstance(f, dict) and bool(f.get("answer")) for f in finals)
    errors = sorted({repr(f) for f in finals if not isinstance(f, dict)})[:5]
    common.report(
        args.out,
        meter,
        len(finals),
        completed,
        calls[0],
        errors=errors,
        durable=bool(stored.values.get("answer")),
        checkpoint_bytes=db.stat().st_size,
    )


if __name__ == "__main__":
    asyncio.run(main())
