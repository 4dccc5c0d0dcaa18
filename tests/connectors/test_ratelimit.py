"""The in-process rate budget and resource-function cache."""

from __future__ import annotations

import pytest

from connectors import TokenBucket, TTLCache
from connectors.errors import RateLimited


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_a_bucket_allows_its_burst_then_spaces_requests_evenly():
    clock = Clock()
    bucket = TokenBucket(60, burst=3, clock=clock, sleep=clock.sleep)

    for _ in range(5):
        bucket.acquire("calendly:c:1")

    assert clock.slept == [pytest.approx(1.0), pytest.approx(1.0)]


def test_buckets_are_per_key():
    clock = Clock()
    bucket = TokenBucket(60, burst=1, clock=clock, sleep=clock.sleep)

    bucket.acquire("calendly:c:1")
    bucket.acquire("calendly:c:2")

    assert clock.slept == []


def test_a_bucket_refills_with_time():
    clock = Clock()
    bucket = TokenBucket(60, burst=1, clock=clock, sleep=clock.sleep)

    bucket.acquire("k")
    clock.now += 5
    bucket.acquire("k")

    assert clock.slept == []


def test_a_wait_beyond_the_limit_raises_rate_limited_with_the_wait():
    clock = Clock()
    bucket = TokenBucket(1, burst=1, max_wait=10, clock=clock, sleep=clock.sleep)
    bucket.acquire("k")

    with pytest.raises(RateLimited) as caught:
        bucket.acquire("k")

    assert caught.value.retry_after == pytest.approx(60)
    assert clock.slept == []


def test_the_cache_forgets_entries_after_their_ttl():
    clock = Clock()
    cache = TTLCache(clock=clock)
    cache.set("a", "value", ttl=300)

    fresh = cache.get("a")
    clock.now += 301

    assert fresh == "value"
    assert cache.get("a") is None


def test_the_cache_evicts_the_oldest_entries_beyond_its_size():
    cache = TTLCache(max_entries=2)
    for key in "abc":
        cache.set(key, key, ttl=60)

    assert [cache.get(k) for k in "abc"] == [None, "b", "c"]
