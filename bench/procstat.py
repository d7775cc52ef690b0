"""CPU time from /proc: of processes, of PostgreSQL's whole cluster, and of the machine.

PostgreSQL forks a backend per connection and backends come and go during a run. The
cluster's CPU over a window is therefore: the postmaster's own time and the time of its
reaped children (cutime/cstime), plus the time of the children alive at the end, minus that
of the children alive at the start (a child that lived through the start had part of its
life before the window, and its whole life lands in cutime if it exits during it).

On a shared machine other databases' backends run too: a sampler reads every backend's
database from its process title ("postgres: 15/main: user DB host(port) idle") 20 times a
second, and their CPU is taken out of the cluster's (what a backend spends between its last
sample and its exit stays in; the share left is reported).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")
PROC = Path("/proc")


def _fields(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (which may hold spaces)."""
    try:
        raw = (PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return raw[raw.rindex(")") + 2 :].split()


def cpu_s(pid: int, *, reaped_children: bool = False) -> float:
    """utime + stime of a process (and of its waited-for children), 0 once it is gone."""
    f = _fields(pid)
    if f is None:
        return 0.0
    # After the name: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14).
    ticks = int(f[11]) + int(f[12])
    if reaped_children:
        ticks += int(f[13]) + int(f[14])
    return ticks / TICK


def children(ppid: int) -> list[int]:
    listed = PROC / str(ppid) / "task" / str(ppid) / "children"
    try:
        return [int(pid) for pid in listed.read_text().split()]
    except (OSError, ValueError):
        pass
    found = []
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            f = _fields(int(entry.name))
            if f is not None and int(f[1]) == ppid:
                found.append(int(entry.name))
    return found


def machine_busy_s() -> float:
    """CPU time all cores spent on anything but idle and I/O wait, since boot."""
    values = [int(v) for v in (PROC / "stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return (sum(values[:8]) - idle) / TICK


def postmaster_pid(data_directory: str) -> int | None:
    """The postmaster's pid from its data directory (`SHOW data_directory`), if readable."""
    try:
        return int((Path(data_directory) / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None


def _cluster_snapshot(postmaster: int) -> tuple[float, float]:
    own = cpu_s(postmaster, reaped_children=True)  # first: see the module docstring
    alive = sum(cpu_s(pid) for pid in children(postmaster))
    return own, alive


def _database(pid: int) -> str | None:
    """A backend's database from its title; None for background processes or not yet set."""
    try:
        title = (PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return None
    words = title.split(":", 2)[-1].split() if title.count(":") >= 2 else []
    is_client = len(words) >= 3 and ("(" in words[2] or words[2] == "[local]")
    return words[1] if is_client else None


class OtherDatabases:
    """CPU of the backends of databases other than `database`, sampled in a thread."""

    def __init__(self, postmaster: int, database: str, interval: float = 0.05) -> None:
        self.postmaster, self.database, self.interval = postmaster, database, interval
        self._first: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._db: dict[int, str | None] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="pg-sampler", daemon=True)

    def _sample(self, baseline: bool = False) -> None:
        for pid in children(self.postmaster):
            if self._db.get(pid) is None:
                self._db[pid] = _database(pid)
            cpu = cpu_s(pid)
            self._first.setdefault(pid, cpu if baseline else 0.0)
            self._last[pid] = cpu

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def start(self) -> None:
        self._sample(baseline=True)
        self._thread.start()

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        self._sample()
        return sum(
            self._last[pid] - self._first[pid]
            for pid, db in self._db.items()
            if db is not None and db != self.database
        )


@dataclass
class CpuMeter:
    """CPU seconds per named group of processes between start() and stop().

    `groups` maps a name to pids measured with their reaped children; `postmaster` adds a
    "postgres" group: the cluster less the backends of databases other than `database`
    (those are reported as "postgres_others"); "machine" is every core's busy time.
    """

    groups: dict[str, Iterable[int]]
    postmaster: int | None = None
    database: str = ""
    _others: OtherDatabases | None = None
    _start: dict[str, float] = field(default_factory=dict)
    _pg_start: tuple[float, float] = (0.0, 0.0)
    _t0: float = 0.0

    def _group_times(self) -> dict[str, float]:
        times = {
            name: sum(cpu_s(pid, reaped_children=True) for pid in pids)
            for name, pids in self.groups.items()
        }
        times["machine"] = machine_busy_s()
        return times

    def start(self) -> None:
        self.groups = {name: list(pids) for name, pids in self.groups.items()}
        if self.postmaster:
            self._others = OtherDatabases(self.postmaster, self.database)
            self._others.start()
            self._pg_start = _cluster_snapshot(self.postmaster)
        self._start = self._group_times()
        self._t0 = time.monotonic()

    def stop(self) -> dict[str, float]:
        end = self._group_times()
        used = {name: end[name] - self._start[name] for name in end}
        if self.postmaster and self._others:
            own, alive = _cluster_snapshot(self.postmaster)
            others = self._others.stop()
            cluster = (own - self._pg_start[0]) + alive - self._pg_start[1]
            used["postgres"], used["postgres_others"] = cluster - others, others
        used["window_s"] = time.monotonic() - self._t0
        return used
