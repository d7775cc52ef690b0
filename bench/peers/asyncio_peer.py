"""Reference peer in the seed's design: one process, asyncio, httpx.AsyncClient, a semaphore.

Every job runs at once: plan, then each subtask as soon as its dependencies have answered,
then synthesis. asyncio.Semaphore(cap) bounds the calls in flight. Nothing is persisted:
this is the floor an orchestrator's bookkeeping adds to.
"""

from __future__ import annotations

import asyncio

import common
import httpx


class Provider:
    def __init__(self, client: httpx.AsyncClient, cap: int, api_key: str) -> None:
        self.client, self.slots = client, asyncio.Semaphore(cap)
        self.headers = {"Authorization": f"Bearer {api_key}"}
        self.calls = 0

    async def chat(self, agent: dict, messages: list[dict], temperature: float | None = None):
        body = {
            "model": agent["model"],
            "messages": messages,
            "temperature": agent["temperature"] if temperature is None else temperature,
            "max_tokens": agent["max_tokens"],
        }
        async with self.slots:
            response = await self.client.post("/chat/completions", json=body, headers=self.headers)
        self.calls += 1
        response.raise_for_status()
        return response.json()["choices"][0]["message"]["content"]


async def run_job(workload: dict, job: dict, provider: Provider) -> str:
    lead = common.orchestrator(workload)
    answer = await provider.chat(lead, job["plan_messages"], workload["plan_temperature"])
    plan = common.parse_plan(answer)
    by_id = {s["id"]: s for s in plan}
    results: dict[str, asyncio.Task] = {}

    async def run_subtask(subtask: dict) -> str:
        upstream = [(by_id[d], await results[d]) for d in subtask["depends_on"]]
        agent = common.agent_for(workload, subtask)
        return await provider.chat(
            agent, common.subtask_messages(workload, job, subtask, agent, upstream)
        )

    for subtask in plan:
        results[subtask["id"]] = asyncio.create_task(run_subtask(subtask))
    done = [(s, await results[s["id"]]) for s in plan]
    return await provider.chat(lead, common.synthesis_messages(workload, job, done))


async def main() -> None:
    args = common.arguments(__doc__.splitlines()[0])
    workload = common.load(args.workload)
    async with httpx.AsyncClient(base_url=args.base_url, timeout=120) as client:
        provider = Provider(client, args.cap, args.api_key)
        with common.Meter(args.provider_pid) as meter:
            answers = await asyncio.gather(
                *(run_job(workload, job, provider) for job in workload["jobs"]),
                return_exceptions=True,
            )
    completed = sum(isinstance(a, str) for a in answers)
    errors = sorted({repr(a) for a in answers if not isinstance(a, str)})[:5]
    common.report(args.out, meter, len(answers), completed, provider.calls, errors=errors)


if __name__ == "__main__":
    asyncio.run(main())
