"""Floor (a) of bench/engine_latency.py: four hops over Redis lists, no framework at all.

A message (its reply key) is LPUSHed to ``hop:0``; a forwarder process BLPOPs ``hop:0..3`` and
LPUSHes the message to the next hop, and after ``hop:3`` to the caller's reply key, which the caller
BLPOPs. So a "chain" is 4 round trips of a worker through Redis plus the caller's push and pop; no
serialisation beyond the key, no acks, no database. Run as ``python raw_hops.py URL PREFIX``.
"""
from __future__ import annotations

import sys

import redis

HOPS = 4


def hop_key(prefix: str, index: int) -> str:
    return f"{prefix}:hop:{index}"


def forward(url: str, prefix: str) -> None:
    client = redis.Redis.from_url(url)
    # Deepest hop first: a chain under way is finished before a new one is started (BLPOP serves
    # the first non-empty key it is given).
    keys = [hop_key(prefix, i) for i in reversed(range(HOPS))]
    index_of = {hop_key(prefix, i).encode(): i for i in range(HOPS)}
    while True:
        popped = client.blpop(keys, timeout=1)  # bounded: the client's socket timeout may be short
        if popped is None:
            continue
        key, reply_key = popped
        index = index_of[key]
        client.lpush(hop_key(prefix, index + 1) if index + 1 < HOPS else reply_key, reply_key)


if __name__ == "__main__":
    forward(sys.argv[1], sys.argv[2])
