"""The simulated population: official test identity numbers that belong to nobody."""

from __future__ import annotations

import hashlib
import json
import random
from functools import cache
from importlib import resources


@cache
def test_personnummer() -> tuple[str, ...]:
    """Skatteverket's test personnummer (12 digits), duplicates removed, in file order."""
    text = resources.files(__package__).joinpath("data/testpersonnummer/allPins.json").read_text()
    return tuple(dict.fromkeys(json.loads(text)))


@cache
def test_samordningsnummer() -> tuple[str, ...]:
    """Skatteverket's test samordningsnummer (12 digits)."""
    path = "data/testpersonnummer/allCoords.json"
    text = resources.files(__package__).joinpath(path).read_text()
    return tuple(dict.fromkeys(json.loads(text)))


def draw_residents(count: int, *, seed: int) -> list[str]:
    """``count`` test personnummer drawn deterministically from ``seed``.

    Beyond the size of the population the same numbers come round again.
    """
    population = test_personnummer()
    rng = random.Random(seed)
    drawn: list[str] = []
    while len(drawn) < count:
        drawn.extend(rng.sample(population, min(len(population), count - len(drawn))))
    return drawn


def bucket(seed: int, key: str, buckets: int = 10_000) -> int:
    """A stable number in ``range(buckets)`` for ``key`` under ``seed`` (same in every process)."""
    digest = hashlib.blake2b(f"{seed}:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % buckets
