import numpy as np
from prometheus_client import CollectorRegistry

from forecaster.metrics import LATENCY, BatchHistogram


def samples(registry: CollectorRegistry) -> dict[str, float]:
    return {
        f"{s.name}{sorted(s.labels.items())}": s.value
        for m in registry.collect()
        for s in m.samples
        if not s.name.endswith("_created")
    }


def test_observe_many_gives_the_same_samples_as_observing_one_by_one() -> None:
    amounts = np.concatenate([np.random.default_rng(0).exponential(0.05, 1000), [0.0, 0.001, 10.0, 99.0]])
    one, many = CollectorRegistry(), CollectorRegistry()
    h1 = BatchHistogram("h", "doc", buckets=LATENCY, registry=one)
    for a in amounts.tolist():
        h1.observe(a)
    h2 = BatchHistogram("h", "doc", buckets=LATENCY, registry=many)
    h2.observe_many(amounts[:500])
    h2.observe_many(amounts[500:])
    h2.observe_many(np.array([]))
    a, b = samples(one), samples(many)
    assert a.keys() == b.keys() and len(a) == len(LATENCY) + 3  # buckets incl. +Inf, count, sum
    for k in a:
        assert np.isclose(a[k], b[k]), k
