"""Arrival processes as pure schedules: intended send offsets (ns from run start)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

NS_PER_S = 1_000_000_000
_CHUNK = 4096


def _gaps_constant(rate_qps: float, _shape: float, _rng: np.random.Generator, n: int) -> np.ndarray:
    return np.full(n, 1.0 / rate_qps)


def _gaps_poisson(rate_qps: float, _shape: float, rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.exponential(1.0 / rate_qps, n)


def _gaps_gamma(rate_qps: float, shape: float, rng: np.random.Generator, n: int) -> np.ndarray:
    # shape k < 1 is burstier than Poisson, k > 1 smoother; the mean gap stays 1/rate.
    return rng.gamma(shape, 1.0 / (rate_qps * shape), n)


GAP_SAMPLERS: dict[str, Callable[[float, float, np.random.Generator, int], np.ndarray]] = {
    "constant": _gaps_constant,
    "poisson": _gaps_poisson,
    "gamma": _gaps_gamma,
}


def arrival_offsets_ns(
    arrival: str,
    rate_qps: float,
    *,
    seed: int = 0,
    burstiness: float = 1.0,
    duration_s: float | None = None,
    requests: int | None = None,
    warmup_s: float = 0.0,
) -> np.ndarray:
    """Intended send offsets, int64 ns from the run's start, anchored absolutely.

    The first arrival is at 0; every later one is the cumulative sum of the gaps, computed
    once here, so lateness of the sender can never accumulate into the plan.  The plan
    covers a warm-up part `[0, warmup_s)` followed by either `duration_s` seconds or
    `requests` arrivals.
    """
    if arrival not in GAP_SAMPLERS:
        raise ValueError(f"unknown arrival process {arrival!r}; known: {', '.join(GAP_SAMPLERS)}")
    if not rate_qps > 0:
        raise ValueError("rate_qps must be > 0")
    if (duration_s is None) == (requests is None):
        raise ValueError("give exactly one of duration_s or requests")
    if arrival == "gamma" and not burstiness > 0:
        raise ValueError("burstiness (gamma shape) must be > 0")
    sample = GAP_SAMPLERS[arrival]
    rng = np.random.Generator(np.random.PCG64(seed))
    warmup_ns = round(warmup_s * NS_PER_S)

    if arrival == "constant":
        # Exact i/rate: no floating accumulation of gaps.
        if requests is not None:
            n_warm = int(np.ceil(warmup_s * rate_qps - 1e-9)) if warmup_s > 0 else 0
            n = n_warm + requests
        else:
            n = int(np.ceil((warmup_s + duration_s) * rate_qps - 1e-9))  # type: ignore[operator]
        return np.round(np.arange(n, dtype=np.float64) * (NS_PER_S / rate_qps)).astype(np.int64)

    end_ns = None if duration_s is None else warmup_ns + round(duration_s * NS_PER_S)
    pieces: list[np.ndarray] = []
    last_s = 0.0
    first = True
    measured = 0
    while True:
        gaps = sample(rate_qps, burstiness, rng, _CHUNK)
        if first:
            gaps[0] = 0.0
            first = False
        times_s = last_s + np.cumsum(gaps)
        last_s = float(times_s[-1])
        offsets = np.round(times_s * NS_PER_S).astype(np.int64)
        if end_ns is not None:
            keep = offsets[offsets < end_ns]
            pieces.append(keep)
            if len(keep) < len(offsets):
                break
        else:
            in_window = offsets >= warmup_ns
            need = requests - measured  # type: ignore[operator]
            cum = np.cumsum(in_window)
            if cum[-1] >= need:
                cut = int(np.searchsorted(cum, need)) + 1
                pieces.append(offsets[:cut])
                break
            pieces.append(offsets)
            measured += int(cum[-1])
    return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int64)


class ItemOrder:
    """Seeded item sequence: one fresh permutation of the items per pass (epoch).

    `at(seq)` gives (item index, epoch) for any position, so bounded-by-time runs need no
    precomputed length.  Each epoch's permutation comes from its own seeded generator, so any
    epoch can be rebuilt on demand and only the last few are kept: memory stays flat however
    long the run (keeping every pass grew by ~80 bytes a request on a one-item set).  Every
    candidate gets the same sequence, which pairs their results item by item.
    """

    __slots__ = ("_cache", "_groups", "_seed", "n_items")

    KEEP = 4

    def __init__(self, n_items: int, seed: int, groups: list[int] | None = None) -> None:
        if n_items <= 0:
            raise ValueError("need at least one item")
        self.n_items = n_items
        self._seed = seed ^ 0x5EED
        self._cache: dict[int, list[int]] = {}
        # Items of one group (the variants of one eval item) are sent one after another, each at its
        # own intended time: the groups are permuted, never split, so every variant pairs up.
        self._groups: list[list[int]] | None = None
        if groups is not None:
            members: dict[int, list[int]] = {}
            for index, group in enumerate(groups):
                members.setdefault(group, []).append(index)
            self._groups = list(members.values())

    def permutation(self, epoch: int) -> list[int]:
        perm = self._cache.get(epoch)
        if perm is None:
            rng = np.random.Generator(np.random.PCG64([self._seed & 0xFFFFFFFFFFFFFFFF, epoch]))
            if self._groups is None:
                perm = rng.permutation(self.n_items).tolist()
            else:
                perm = [i for g in rng.permutation(len(self._groups)).tolist() for i in self._groups[g]]
            if len(self._cache) >= self.KEEP:
                del self._cache[min(self._cache)]
            self._cache[epoch] = perm
        return perm

    def at(self, seq: int) -> tuple[int, int]:
        if self.n_items == 1:
            return 0, seq
        epoch, pos = divmod(seq, self.n_items)
        return self.permutation(epoch)[pos], epoch
