"""The process's Redis connections: one pool per URL, shared by every module that talks to Redis.

Named redisconn, not redis, so that `from agents import redis` can never be mistaken for
(or, run from inside agents/, shadow) the redis package this module wraps.
"""

from __future__ import annotations

import threading

import redis

_lock = threading.Lock()
_clients: dict[str, redis.Redis] = {}


def redis_client(url: str) -> redis.Redis:
    """One connection pool per process and URL."""
    with _lock:
        client = _clients.get(url)
        if client is None:
            client = _clients[url] = redis.Redis.from_url(url)
        return client
