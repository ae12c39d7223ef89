"""The scheduler's ready queue: keys whose needs all passed, best first, and the named
resources that running keys hold. Pure: no pytest import."""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping

Priority = tuple[int, float, int]


class ReadyQueue:
    """Ready keys by priority (smallest first); a key is taken only when none of its
    resources is held.

    Attributes:
        held: resource -> the key holding it (from :meth:`take` until :meth:`release`).
    """

    def __init__(self, priority: Mapping[str, Priority], resources: Mapping[str, tuple[str, ...]]) -> None:
        self._priority = priority
        self._resources = resources
        self._heap: list[tuple[Priority, str]] = []
        self.held: dict[str, str] = {}

    def __bool__(self) -> bool:
        return bool(self._heap)

    def push(self, key: str) -> None:
        heapq.heappush(self._heap, (self._priority[key], key))

    def take(self, max_tier: int | None = None) -> str | None:
        """The best key whose resources are all free: removed, its resources now held.
        None when every ready key waits for a resource a running key holds, or (with
        ``max_tier``) when no ready key's tier, its priority's first element, is that or less."""
        skipped: list[tuple[Priority, str]] = []
        chosen = None
        while self._heap:
            if max_tier is not None and self._heap[0][0][0] > max_tier:
                break  # the heap's smallest is above it: so is every other
            entry = heapq.heappop(self._heap)
            if any(res in self.held for res in self._resources.get(entry[1], ())):
                skipped.append(entry)
                continue
            chosen = entry[1]
            break
        for entry in skipped:
            heapq.heappush(self._heap, entry)
        if chosen is not None:
            for res in self._resources.get(chosen, ()):
                self.held[res] = chosen
        return chosen

    def release(self, key: str) -> None:
        """``key`` ended or went back to wait: its resources are free."""
        for res in self._resources.get(key, ()):
            if self.held.get(res) == key:
                del self.held[res]

    def remove(self, keys: Iterable[str]) -> set[str]:
        """Take ``keys`` out of the queue; returns those that were in it."""
        wanted = set(keys)
        found = {k for _, k in self._heap if k in wanted}
        if found:
            self._heap = [entry for entry in self._heap if entry[1] not in found]
            heapq.heapify(self._heap)
        return found
