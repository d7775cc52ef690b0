"""Logged-in job pages: WebSocket clients on /ws/jobs/<id>/, each following one job after another.

Run as a separate process, like bench/board_clients.py. The bench writes "job ID" lines to its
stdin as it submits; PAGES pages each take the next job, watch it (its subtasks' text streams
to the page while it is watched) until its header shows it ended, or nothing came for IDLE_S
(it ended before the page opened), then open the next one. "stop" closes them and writes the
JSON result: pages opened, fragments and streamed text messages received.

    python bench/job_pages.py --url ws://127.0.0.1:PORT --origin http://127.0.0.1:PORT \
        --sessions KEY1,KEY2,... --out result.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

TERMINAL = ("completed", "failed", "cancelled")
IDLE_S = 2.0
HEADER_RE = re.compile(r'<section id="job-header"[^>]*\bdata-status="(\w+)"')
TEXT_PREFIX = "<!--text "


async def _page(url: str, origin: str, session: str, jobs: asyncio.Queue, tally: dict) -> None:
    from websockets.asyncio.client import connect

    headers = {"Cookie": f"sessionid={session}"}
    while (job_id := await jobs.get()) is not None:
        async with connect(
            f"{url}/ws/jobs/{job_id}/", origin=origin, additional_headers=headers, max_size=None
        ) as ws:
            tally["opened"] += 1
            while True:
                try:
                    message = await asyncio.wait_for(ws.recv(), timeout=IDLE_S)
                except TimeoutError:
                    break
                if message.startswith(TEXT_PREFIX):
                    tally["streamed"] += 1
                    continue
                tally["fragments"] += 1
                status = HEADER_RE.search(message)
                if status and status.group(1) in TERMINAL:
                    tally["ended_seen"] += 1
                    break


async def _run(url: str, origin: str, sessions: list[str], out: Path) -> None:
    jobs: asyncio.Queue = asyncio.Queue()
    tally = {"opened": 0, "fragments": 0, "streamed": 0, "ended_seen": 0}
    tasks = [asyncio.create_task(_page(url, origin, s, jobs, tally)) for s in sessions]
    print(f"connected {len(sessions)}", flush=True)
    loop = asyncio.get_running_loop()
    while True:
        line = (await loop.run_in_executor(None, sys.stdin.readline)).strip()
        if line.startswith("job "):
            jobs.put_nowait(int(line.split()[1]))
        elif line in ("stop", ""):
            break
    failed = [repr(t.exception()) for t in tasks if t.done() and t.exception()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    out.write_text(json.dumps({**tally, "pages": len(sessions), "errors": failed}))


@dataclass
class JobPages:
    proc: subprocess.Popen
    out: Path

    def follow(self, job_id: int) -> None:
        self.proc.stdin.write(f"job {job_id}\n")
        self.proc.stdin.flush()

    def stop(self) -> dict:
        self.proc.communicate("stop\n", timeout=60)
        return json.loads(self.out.read_text())


def start(python: str, port: int, sessions: list[str], out: Path, log: Path) -> JobPages:
    cmd = [python, __file__, "--url", f"ws://127.0.0.1:{port}", "--origin"]
    cmd += [f"http://127.0.0.1:{port}", "--sessions", ",".join(sessions), "--out", str(out)]
    from bench.board_clients import spawn  # not at the top: this file also runs as a script

    return JobPages(spawn(cmd, log, "job pages"), out)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True, help="ws://host:port")
    parser.add_argument("--origin", required=True)
    parser.add_argument("--sessions", required=True, help="session keys, comma-separated")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    asyncio.run(_run(args.url, args.origin, args.sessions.split(","), args.out))


if __name__ == "__main__":
    main()
