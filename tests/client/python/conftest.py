"""Fixtures of the Python client's tests: ``tiers`` starts kvtier-local tiers on demand (one per
shard count and dtype, kept for the whole run) and stops them at the end; ``rng`` is a seeded
generator whose seed is printed, so a failure can be replayed (KVTIER_TEST_SEED)."""

from __future__ import annotations

import os
import random
from typing import Dict, Iterator, Tuple

import numpy as np
import pytest

from tier_processes import LocalTier


class Tiers:
    def __init__(self) -> None:
        self._tiers: Dict[Tuple[int, str], LocalTier] = {}

    def get(self, shards: int, dtype: str = "fp32") -> LocalTier:
        key = (shards, dtype)
        if key not in self._tiers:
            self._tiers[key] = LocalTier(shards, dtype)
        return self._tiers[key]

    def stop(self) -> None:
        for tier in self._tiers.values():
            assert tier.stop() == 0, tier.log()


@pytest.fixture(scope="session")
def tiers() -> Iterator[Tiers]:
    started = Tiers()
    yield started
    started.stop()


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> np.random.Generator:
    seed = int(os.environ.get("KVTIER_TEST_SEED") or random.randrange(2**32))
    print(f"{request.node.name}: seed {seed} (KVTIER_TEST_SEED)")
    return np.random.default_rng(seed)
