"""Rate limits per learner and per client address (issue 16, item 4): so many of a thing per
minute, each a setting, each a 429 that names its setting and says when to try again.

``Rates.hit(setting, *keys)`` counts one more of the thing for every key (a learner id, a client
address) and raises ``RateLimited`` when any key is already at the setting's limit in the current
window. Alone the counts are in this process; a class deployment (``runner = "celery"``) counts
in Redis at ``broker_url`` (the broker it already has), so every web process shares one count.

In Redis each (setting, key) is a sorted set ``explorer:rate:<setting>:<key>`` of the hits of
the last minute, scored by the Redis server's clock (web processes on hosts whose clocks differ
agree), checked and added to by one Lua script, so two processes never both take the last place.
When Redis cannot be reached the limits fail open: the request is served and counted in this
process only until Redis answers again (one warning when it goes, one line when it is back),
never a 500 for want of a counter.
"""

from __future__ import annotations

import logging
import math
import secrets
import threading
import time
from collections import deque
from typing import Any

import anyio.to_thread
from fastapi import Request

from app.config import Settings
from app.web.admission import client_key
from app.web.identity import learner_of
from app.workers.pool import TooBusy

log = logging.getLogger("app.rates")

WINDOW_S = 60.0
KEY_PREFIX = "explorer:rate:"
# Redis must answer within this, or the hit is counted here: a rate limit never holds a request.
REDIS_TIMEOUT_S = 0.5
# After Redis failed to answer, hits are counted here this long before it is asked again.
REDIS_RETRY_S = 5.0


class RateLimited(TooBusy):
    """Past a per-minute limit: the app's 429, naming ``setting``, with ``retry_after``."""

    def __init__(self, what: str, setting: str, limit: int, retry_after: float) -> None:
        super().__init__(
            f"Too many {what}: at most {limit} a minute (setting {setting} = {limit}); "
            f"try again in {max(1, math.ceil(retry_after))} s.",
            setting,
            max(1, math.ceil(retry_after)),
        )


# What each limit counts, as a refusal names it.
WHAT = {
    "classes_max_joins_per_minute": "attempts to join a class",
    "classes_max_joins_per_minute_per_address": "attempts to join a class from this address",
    "identity_max_links_per_minute": "identity links",
    "program_max_per_minute": "programs run",
}

# KEYS: one sorted set per key. ARGV: window (ms), limit, a member unique to this hit. Returns
# {0, 0} when counted, else {the 1-based index of the key at its limit, ms until a place frees}.
HIT_SCRIPT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  if redis.call('ZCARD', key) >= limit then
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    return {i, tonumber(oldest[2]) + window - now}
  end
end
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, ARGV[3])
  redis.call('PEXPIRE', key, window)
end
return {0, 0}
"""


class LocalCounts:
    """Sliding one-minute windows of hits, by (setting, key), in this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hits: dict[tuple[str, str], deque[float]] = {}

    def hit(self, setting: str, keys: tuple[str, ...], limit: int) -> None:
        now = time.monotonic()
        with self._lock:
            windows = []
            for key in keys:
                window = self._hits.setdefault((setting, key), deque())
                while window and window[0] <= now - WINDOW_S:
                    window.popleft()
                if len(window) >= limit:
                    retry = window[0] + WINDOW_S - now
                    raise RateLimited(WHAT.get(setting, setting), setting, limit, retry)
                windows.append(window)
            for window in windows:
                window.append(now)
            if len(self._hits) > 100_000:  # forget idle keys now and then
                for name in [k for k, w in self._hits.items() if not w or w[-1] <= now - WINDOW_S]:
                    del self._hits[name]


class RedisCounts:
    """The same windows in Redis, shared by every process that counts there."""

    def __init__(self, url: str) -> None:
        import redis

        self.client = redis.Redis.from_url(
            url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S
        )
        kwargs = self.client.connection_pool.connection_kwargs
        # Where it counts, as a log line may say it (no password).
        self.where = f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}/{kwargs.get('db', 0)}"
        self.script: Any = self.client.register_script(HIT_SCRIPT)
        # What the client raises when Redis does not answer (or answers with an error).
        self.unavailable: type[Exception] = redis.RedisError

    def hit(self, setting: str, keys: tuple[str, ...], limit: int) -> None:
        names = [f"{KEY_PREFIX}{setting}:{key}" for key in keys]
        member = f"{time.time_ns()}-{secrets.token_hex(4)}"
        refused, wait_ms = self.script(keys=names, args=[int(WINDOW_S * 1000), limit, member])
        if int(refused):
            raise RateLimited(WHAT.get(setting, setting), setting, limit, int(wait_ms) / 1000)

    def close(self) -> None:
        self.client.close()


class Rates:
    """Per-minute limits by (setting, key): in Redis when the app is a class deployment (or
    ``redis_url`` is given), else in this process."""

    def __init__(self, settings: Settings, redis_url: str | None = None) -> None:
        self.settings = settings
        if redis_url is None and settings.runner == "celery":
            redis_url = settings.broker_url
        self.local = LocalCounts()
        self.shared = RedisCounts(redis_url) if redis_url else None
        self._lock = threading.Lock()
        self._redis_down_until: float | None = None  # set while Redis is not answering

    def limit(self, setting: str) -> int:
        return int(getattr(self.settings, setting))

    def hit(self, setting: str, *keys: str) -> None:
        """Count one for each key; ``RateLimited`` (nothing counted) when a key is at the limit."""
        limit = self.limit(setting)
        if self.shared is not None and self._redis_usable():
            try:
                self.shared.hit(setting, keys, limit)
            except self.shared.unavailable as exc:
                self._redis_failed(exc)
            else:
                self._redis_answered()
                return
        self.local.hit(setting, keys, limit)

    async def hit_async(self, setting: str, *keys: str) -> None:
        """``hit`` from the event loop: a Redis round trip waits in a worker thread."""
        if self.shared is None:
            self.hit(setting, *keys)
        else:
            await anyio.to_thread.run_sync(self.hit, setting, *keys)

    def _redis_usable(self) -> bool:
        with self._lock:
            return self._redis_down_until is None or time.monotonic() >= self._redis_down_until

    def _redis_failed(self, exc: Exception) -> None:
        with self._lock:
            first = self._redis_down_until is None
            self._redis_down_until = time.monotonic() + REDIS_RETRY_S
        if first:
            assert self.shared is not None
            log.warning(
                "rate limits: Redis at %s does not answer (%s: %s); counting in this process "
                "until it does",
                self.shared.where,
                type(exc).__name__,
                exc,
            )

    def _redis_answered(self) -> None:
        if self._redis_down_until is None:  # the usual case: no lock taken
            return
        with self._lock:
            was_down, self._redis_down_until = self._redis_down_until is not None, None
        if was_down:
            log.info("rate limits: Redis answers again; counting there")

    def close(self) -> None:
        if self.shared is not None:
            self.shared.close()


def rates_of(request: Request) -> Rates:
    """The app's rate limits (``app.state.rates``)."""
    rates: Rates = request.app.state.rates
    return rates


def learner_key(request: Request) -> str:
    """The key of the requesting learner's counts: ``learner:<id>``. While no learner can be told
    (the store that keeps the cookies' signing key is out of reach), ``client:<address>``, so
    what needs no store, a program, is still served and still counted."""
    state = request.scope.get("state", {})
    if state.get("learner") is None and state.get("learner_error") is not None:
        return f"client:{client_key(request)}"
    return f"learner:{learner_of(request)}"
