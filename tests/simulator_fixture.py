"""Run the LLM simulator in a background thread on a free port."""

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from agents.management.commands.llm_simulator import SimulatorConfig, SimulatorServer, make_server


@contextmanager
def running_simulator(**config: object) -> Iterator[SimulatorServer]:
    server = make_server(SimulatorConfig(**config))  # type: ignore[arg-type]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
