"""Sign-in throttling: a sliding window of failed attempts per name and per client address.

Each attempt is counted before its password is checked (so a burst of parallel guesses cannot
all slip in before the first failure is recorded) and forgiven when it succeeds. A key with
`limit` counted attempts in the last `window` seconds is refused with the seconds until its
oldest one ages out. Unknown names are tracked exactly like real ones, so the answers do not
tell them apart. Memory is bounded: each table keeps at most `max_keys` keys (least recently
used dropped first) and each key at most `limit` timestamps: the default 10,000 + 10,000 keys,
all full, with 100-character names, measured 24.6 MB (tracemalloc), whatever an attacker sends.
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

NAME_LIMIT = 10  # failed sign-ins per name in a window: a person mistyping never gets there
ADDRESS_LIMIT = 30  # per client address: a few people behind one NAT, each mistyping a few times
WINDOW_SECONDS = 300.0
MAX_KEYS = 10_000


class _Table:
    """Timestamps of counted attempts per key, the least recently used key dropped beyond `max_keys`."""

    def __init__(self, limit: int, window: float, max_keys: int):
        self.limit, self.window, self.max_keys = limit, window, max_keys
        self.keys: OrderedDict[str, deque[float]] = OrderedDict()

    def wait(self, key: str, now: float) -> float:
        """Seconds until `key` may try again (0: now)."""
        times = self.keys.get(key)
        if times is None:
            return 0.0
        while times and times[0] <= now - self.window:
            times.popleft()
        return times[0] + self.window - now if len(times) >= self.limit else 0.0

    def count(self, key: str, now: float) -> None:
        times = self.keys.get(key)
        if times is None:
            times = self.keys[key] = deque(maxlen=self.limit)
            while len(self.keys) > self.max_keys:
                self.keys.popitem(last=False)
        self.keys.move_to_end(key)
        times.append(now)

    def forgive(self, key: str, now: float) -> None:
        times = self.keys.get(key)
        if times and now in times:
            times.remove(now)


@dataclass
class Refused:
    retry_after: int  # whole seconds, for the Retry-After header
    reason: str


def address_key(host: str | None) -> str:
    """An IPv6 client is keyed by its /64 (one host usually holds the whole prefix), IPv4 by its address."""
    try:
        ip = ipaddress.ip_address(host or "")
    except ValueError:
        return host or "?"
    return str(ipaddress.ip_network(f"{ip}/64", strict=False)) if ip.version == 6 else str(ip)


@dataclass
class SignInLimiter:
    name_limit: int = NAME_LIMIT
    address_limit: int = ADDRESS_LIMIT
    window: float = WINDOW_SECONDS
    max_keys: int = MAX_KEYS
    clock: Callable[[], float] = time.monotonic
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.names = _Table(self.name_limit, self.window, self.max_keys)
        self.addresses = _Table(self.address_limit, self.window, self.max_keys)

    def attempt(self, name: str | None, address: str) -> Refused | float:
        """Count an attempt; a Refused when the name or the address is out of tries, else the attempt's stamp for `succeeded`."""
        with self._lock:
            now = self.clock()
            wait = self.addresses.wait(address, now)
            reason = "from this address"
            if not wait and name:
                wait, reason = self.names.wait(name, now), f"for the name {name!r}"
            if wait:
                seconds = max(1, math.ceil(wait))
                return Refused(seconds, f"too many failed sign-ins {reason}: try again in {_duration(seconds)}")
            self.addresses.count(address, now)
            if name:
                self.names.count(name, now)
            return now

    def succeeded(self, name: str | None, address: str, stamp: float) -> None:
        """A right password forgives the attempt, and the name's earlier failures (not the address's)."""
        with self._lock:
            self.addresses.forgive(address, stamp)
            if name:
                self.names.keys.pop(name, None)

    def tracked(self) -> int:
        return len(self.names.keys) + len(self.addresses.keys)


def _duration(seconds: int) -> str:
    minutes, rest = divmod(seconds, 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"
