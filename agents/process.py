"""Who this process is, and whether a process named that way is gone.

A lease or a limiter slot names its holder `host:pid:start` (start: the process's start time
in clock ticks, so a reused pid is not mistaken for the holder). On the holder's own host a
dead holder is seen at once; elsewhere only its lease's expiry tells.
"""

from __future__ import annotations

import os
import socket

_cached: tuple[int, str] = (0, "")


def me() -> str:
    global _cached
    pid = os.getpid()
    if _cached[0] != pid:  # computed once per process (again after a fork)
        _cached = (pid, f"{socket.gethostname()}:{pid}:{_started(pid)}")
    return _cached[1]


def is_gone(holder: str) -> bool:
    """True only when `holder` ran on this host and its process no longer runs."""
    host, _, rest = holder.partition(":")
    pid, _, started = rest.partition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    stat = _stat(int(pid))
    if stat is None:
        return True
    state, ticks = stat
    return state in ("Z", "X") or (bool(started) and started != ticks)


def _started(pid: int) -> str:
    stat = _stat(pid)
    return stat[1] if stat else ""


def _stat(pid: int) -> tuple[str, str] | None:
    """(state, start time) from /proc, or None when there is no such process."""
    if not os.path.exists("/proc/self/stat"):  # no /proc here: the holder counts as alive
        return ("R", "")
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except FileNotFoundError:
        return None
    fields = text.rpartition(")")[2].split()
    return fields[0], fields[19]
