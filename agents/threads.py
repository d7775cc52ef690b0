"""The background threads of a process, in one registry: what runs, who owns it, how it stops.

Each owner registers its thread once, at import (`register`), and starts it where it is first
needed (`Background.start`): a daemon thread, started if it is not alive (so one that died on
an error is started again), never twice at once. `registered()` lists them all. A thread whose
owner gave it a `stop_event` ends when it is set (`Background.stop` sets it, and calls `wake`
when the thread may be waiting on something else); the others run until their process exits.

Not registered, because they are no background threads: the DNS lookup thread
agents.outbound starts for one request (it lives as long as that lookup, bounded by its
timeout), the thread pool stream.access runs a request's permission checks on, and the feed
readers of stream.fanout (asyncio tasks on the web server's loop).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

_lock = threading.Lock()
_registry: dict[str, Background] = {}


@dataclass(eq=False)
class Background:
    name: str  # the thread's name, as a debugger or py-spy shows it
    owner: str  # the module that registers and starts it
    target: Callable[[], None]
    stop_event: threading.Event | None = None  # set to ask it to end, when it can be asked
    wake: Callable[[], None] | None = None  # rouses it from its wait, to see the event set
    _thread: threading.Thread | None = field(default=None, repr=False)

    def start(self) -> bool:
        """Start the thread unless it is alive; whether it was started now."""
        with _lock:
            if self.alive():
                return False
            if self.stop_event is not None:
                self.stop_event.clear()
            self._thread = threading.Thread(target=self.target, name=self.name, daemon=True)
            self._thread.start()
            return True

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float | None = None) -> bool:
        """Ask the thread to end and wait up to `timeout` for it; whether it has ended. A
        thread with no stop event runs until its process exits (it is a daemon)."""
        if self.stop_event is None:
            return not self.alive()
        self.stop_event.set()
        if self.wake is not None:
            self.wake()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        return not self.alive()


def register(
    name: str,
    owner: str,
    target: Callable[[], None],
    stop_event: threading.Event | None = None,
    wake: Callable[[], None] | None = None,
) -> Background:
    """The one entry for `name`: a module imported again (a test reloading it) gets the entry
    it registered before, with its new target, so no second thread of that name starts."""
    with _lock:
        known = _registry.get(name)
        if known is not None:
            if known.owner != owner:
                raise ValueError(f"thread {name!r} is already registered by {known.owner}")
            known.target, known.stop_event, known.wake = target, stop_event, wake
            return known
        _registry[name] = entry = Background(name, owner, target, stop_event, wake)
        return entry


def registered() -> list[Background]:
    """Every background thread a process may run, in the order their owners registered."""
    with _lock:
        return list(_registry.values())
