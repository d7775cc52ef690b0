"""Logged-in board pages: WebSocket clients on /ws/board/ that note when each job shows ended.

Run as a separate process (one asyncio task per socket), so the clients drain their sockets
at once and never compete with the bench's own process. Each message is stamped with
time.time() on receipt and parsed only after the run. The process prints "connected N" once
every socket is open, and on a "stop" line on stdin closes them and writes its JSON result.

    python bench/board_clients.py --url ws://127.0.0.1:PORT/ws/board/ \
        --origin http://127.0.0.1:PORT --sessions KEY1,KEY2,... --out result.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

TERMINAL = ("completed", "failed", "cancelled")
# A board fragment carries job cards: <article ... id="job-card-7" data-status="completed">.
CARD_RE = re.compile(r"<article\b[^>]*>")
CARD_ID_RE = re.compile(r'\bid="job-card-(\d+)"')
CARD_STATUS_RE = re.compile(r'\bdata-status="(\w+)"|\bclass="[^"]*\bstatus-(\w+)')


def ended_cards(html: str) -> list[tuple[int, str]]:
    """(job id, status) of every card in a fragment that shows its job ended."""
    found = []
    for tag in CARD_RE.findall(html):
        card, status = CARD_ID_RE.search(tag), CARD_STATUS_RE.search(tag)
        if card and status:
            value = status.group(1) or status.group(2)
            if value in TERMINAL:
                found.append((int(card.group(1)), value))
    return found


async def _client(url: str, origin: str, session: str, connected: asyncio.Event, log: list):
    from websockets.asyncio.client import connect

    headers = {"Cookie": f"sessionid={session}"}
    async with connect(url, origin=origin, additional_headers=headers, max_size=None) as ws:
        connected.set()
        async for message in ws:
            log.append((time.time(), message))


async def _run(url: str, origin: str, sessions: list[str], out: Path) -> None:
    logs: list[list] = [[] for _ in sessions]
    events = [asyncio.Event() for _ in sessions]
    tasks = [
        asyncio.create_task(_client(url, origin, s, e, log))
        for s, e, log in zip(sessions, events, logs, strict=True)
    ]
    await asyncio.wait_for(asyncio.gather(*(e.wait() for e in events)), timeout=30)
    print(f"connected {len(sessions)}", flush=True)
    loop = asyncio.get_running_loop()
    while (await loop.run_in_executor(None, sys.stdin.readline)).strip() not in ("stop", ""):
        pass
    # A socket the server closed before the end missed what came after.
    failed = [repr(t.exception() or "closed by the server") for t in tasks if t.done()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    clients = []
    for log in logs:
        ended: dict[int, float] = {}
        for received, message in log:
            for job_id, _ in ended_cards(message if isinstance(message, str) else ""):
                ended.setdefault(job_id, received)
        clients.append({"messages": len(log), "ended": ended})
    out.write_text(json.dumps({"clients": clients, "errors": failed}))


@dataclass
class BoardClients:
    proc: subprocess.Popen
    out: Path

    def stop(self) -> dict:
        """Close the sockets; per client, when each job's ended card arrived."""
        self.proc.communicate("stop\n", timeout=60)
        data = json.loads(self.out.read_text())
        for client in data["clients"]:
            client["ended"] = {int(k): v for k, v in client["ended"].items()}
        return data


def start(python: str, port: int, sessions: list[str], out: Path, log: Path) -> BoardClients:
    cmd = [
        python,
        __file__,
        "--url",
        f"ws://127.0.0.1:{port}/ws/board/",
        "--origin",
        f"http://127.0.0.1:{port}",
        "--sessions",
        ",".join(sessions),
        "--out",
        str(out),
    ]
    return BoardClients(spawn(cmd, log, "board clients"), out)


def spawn(cmd: list[str], log: Path, what: str) -> subprocess.Popen:
    """A clients' process (commands on its stdin), once it printed "connected"."""
    proc = subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=log.open("w"), stderr=subprocess.STDOUT, text=True
    )
    deadline = time.monotonic() + 40
    while "connected" not in log.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            sys.exit(f"{what} did not connect:\n{log.read_text()[-3000:]}")
        time.sleep(0.05)
    return proc


def latency_ms(received: dict, finished: dict[int, float]) -> tuple[list[float], int]:
    """Terminal commit (finished_at) to receipt, per job and client; and the pairs missed."""
    samples, missed = [], 0
    for client in received["clients"]:
        for job_id, finished_at in finished.items():
            at = client["ended"].get(job_id)
            if at is None:
                missed += 1
            else:
                samples.append((at - finished_at) * 1000)
    return samples, missed


def figures(received: dict, finished: dict[int, float]) -> dict:
    samples, missed = latency_ms(received, finished)
    return {
        "p50_ms": percentile(samples, 50),
        "p95_ms": percentile(samples, 95),
        "max_ms": max(samples, default=None),
        "samples": len(samples),
        "missed": missed,
        "messages": sum(c["messages"] for c in received["clients"]),
        "errors": received["errors"],
    }


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q) - 1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--origin", required=True)
    parser.add_argument("--sessions", required=True, help="session keys, comma-separated")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    asyncio.run(_run(args.url, args.origin, args.sessions.split(","), args.out))


if __name__ == "__main__":
    main()
