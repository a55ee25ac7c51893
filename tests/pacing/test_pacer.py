import numpy as np
import pytest

from loadbench.pacing.pacer import ItemOrder, arrival_offsets_ns

NS = 1_000_000_000


@pytest.mark.parametrize(
    "rate, duration, expected",
    [
        (10, 1.0, [i * NS // 10 for i in range(10)]),
        (4, 2.0, [i * NS // 4 for i in range(8)]),
        (3, 1.0, [0, 333_333_333, 666_666_667]),
    ],
)
def test_constant_offsets_are_exact(rate, duration, expected):
    assert arrival_offsets_ns("constant", rate, duration_s=duration).tolist() == expected


def test_constant_offsets_never_drift_over_long_plans():
    offsets = arrival_offsets_ns("constant", 1000, requests=1_000_000)
    assert offsets[-1] == 999_999 * 1_000_000
    assert len(offsets) == 1_000_000


def test_constant_requests_count_excludes_warmup():
    offsets = arrival_offsets_ns("constant", 10, requests=20, warmup_s=1.0)
    assert len(offsets) == 30
    assert int((offsets >= NS).sum()) == 20


@pytest.mark.parametrize("arrival, shape, cv2", [("poisson", 1.0, 1.0), ("gamma", 0.25, 4.0), ("gamma", 4.0, 0.25)])
def test_random_gaps_have_the_right_mean_and_variance(arrival, shape, cv2):
    rate = 50.0
    offsets = arrival_offsets_ns(arrival, rate, seed=7, burstiness=shape, requests=200_000)
    gaps = np.diff(offsets) / NS
    assert gaps.mean() == pytest.approx(1 / rate, rel=0.02)
    # squared coefficient of variation: 1 for Poisson, 1/shape for gamma
    assert gaps.var() / gaps.mean() ** 2 == pytest.approx(cv2, rel=0.05)


@pytest.mark.parametrize("arrival", ["constant", "poisson", "gamma"])
def test_same_seed_same_schedule_other_seed_other_schedule(arrival):
    a = arrival_offsets_ns(arrival, 20, seed=3, burstiness=0.5, duration_s=30)
    b = arrival_offsets_ns(arrival, 20, seed=3, burstiness=0.5, duration_s=30)
    c = arrival_offsets_ns(arrival, 20, seed=4, burstiness=0.5, duration_s=30)
    assert np.array_equal(a, b)
    if arrival != "constant":
        assert not np.array_equal(a[: min(len(a), len(c))], c[: min(len(a), len(c))])


def test_duration_bounds_the_plan_and_offsets_are_sorted_and_start_at_zero():
    offsets = arrival_offsets_ns("poisson", 100, seed=1, duration_s=10, warmup_s=2)
    assert offsets[0] == 0
    assert offsets[-1] < 12 * NS
    assert np.all(np.diff(offsets) >= 0)
    assert 1000 < len(offsets) < 1400  # ~1200 expected


def test_requests_mode_counts_measured_arrivals_exactly():
    offsets = arrival_offsets_ns("poisson", 100, seed=2, requests=5000, warmup_s=3)
    assert int((offsets >= 3 * NS).sum()) == 5000


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(arrival="uniform", rate_qps=1, duration_s=1), "unknown arrival"),
        (dict(arrival="poisson", rate_qps=0, duration_s=1), "rate_qps"),
        (dict(arrival="poisson", rate_qps=-5, duration_s=1), "rate_qps"),
        (dict(arrival="poisson", rate_qps=1), "exactly one"),
        (dict(arrival="gamma", rate_qps=1, duration_s=1, burstiness=0), "burstiness"),
    ],
)
def test_bad_parameters_are_rejected(kwargs, message):
    arrival = kwargs.pop("arrival")
    rate = kwargs.pop("rate_qps")
    with pytest.raises(ValueError, match=message):
        arrival_offsets_ns(arrival, rate, **kwargs)


def test_item_order_is_a_fresh_seeded_permutation_per_epoch():
    order = ItemOrder(5, seed=11)
    seq = [order.at(i) for i in range(15)]
    for epoch in range(3):
        items = [item for item, e in seq[epoch * 5 : epoch * 5 + 5]]
        assert sorted(items) == [0, 1, 2, 3, 4]
        assert all(e == epoch for _, e in seq[epoch * 5 : epoch * 5 + 5])
    again = ItemOrder(5, seed=11)
    assert [again.at(i) for i in range(15)] == seq
    assert [ItemOrder(5, seed=12).at(i) for i in range(15)] != seq


def test_item_order_keeps_a_bounded_cache_and_rebuilds_any_epoch_identically():
    order = ItemOrder(7, seed=3)
    forward = [order.at(i) for i in range(7 * 50)]
    assert len(order._cache) <= ItemOrder.KEEP
    again = ItemOrder(7, seed=3)
    assert [again.at(i) for i in reversed(range(7 * 50))] == list(reversed(forward))
    for epoch in range(50):  # every pass is a permutation of all items
        assert sorted(item for item, e in forward if e == epoch) == list(range(7))
    single = ItemOrder(1, seed=0)
    assert single.at(10**9) == (0, 10**9) and not single._cache
