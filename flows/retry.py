"""When a failed run is tried again: exponential backoff, the application's own wait, a cap."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a run whose step failed retryably is tried again."""

    max_attempts: int = 5
    base_seconds: float = 10.0
    max_seconds: float = 600.0

    def backoff(self, attempt: int) -> float:
        """Seconds before the attempt after ``attempt``: base, 2x base, 4x base... capped."""
        return min(self.base_seconds * (2 ** max(0, attempt - 1)), self.max_seconds)

    def next_delay(
        self, *, retryable: bool, attempt: int, retry_after: float | None = None
    ) -> float | None:
        """Seconds until the next attempt, or None when the run has failed for good.

        A wait the application asked for (``Retry-After``) is honoured even when it is longer
        than the backoff.
        """
        if not retryable or attempt >= self.max_attempts:
            return None
        return max(self.backoff(attempt), retry_after or 0)

    def exhausted(self, attempt: int) -> bool:
        """True once more attempts have started than allowed: earlier ones never finished
        (their worker died), and a run that kills its worker must not be taken over forever."""
        return attempt > self.max_attempts
