"""How long a backed-off login takes: as long as a password check.

A backed-off attempt is refused without asking the users service, so it would answer
in a millisecond where a checked one takes the time of argon2 (about 100 ms). That
would show the back-off; and since the counter is per account (both identifiers of an
account share it), failing five times with a username and then timing an email would
tell that they belong together, and so that the account exists. So a backed-off login
waits as long as a real check took: a duration drawn from this worker's recent checks
(known and unknown accounts alike: an unknown one costs a dummy argon2 run). Waiting
costs no CPU and keeps the users service out of it, as a back-off should.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque

# Before any check was timed (a fresh worker): about argon2id's time on our hardware.
DEFAULT_SECONDS = 0.1


class CheckDurations:
    def __init__(self, size: int = 64) -> None:
        self._recent: deque[float] = deque(maxlen=size)
        self._lock = threading.Lock()

    def record(self, seconds: float) -> None:
        with self._lock:
            self._recent.append(seconds)

    def sample(self) -> float:
        with self._lock:
            return random.choice(self._recent) if self._recent else DEFAULT_SECONDS

    def wait_like_a_check(self) -> None:
        time.sleep(self.sample())


CHECK_DURATIONS = CheckDurations()
