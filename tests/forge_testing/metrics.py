"""Prometheus text (a `/metrics` answer) read with prometheus_client's own parser."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample


def _matching(text: str, name: str, labels: dict[str, str]) -> Iterator[Sample]:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(
                sample.labels.get(key) == value for key, value in labels.items()
            ):
                yield sample


def metric_total(text: str, name: str, **labels: str) -> float:
    """The sum of the samples `name` whose labels include `labels` (0 when there are none)."""
    return sum(sample.value for sample in _matching(text, name, labels))


def metric_by_label(
    text: str, name: str, label: str, **labels: str
) -> dict[str, float]:
    """The samples `name` whose labels include `labels`, summed per value of `label`."""
    totals: dict[str, float] = {}
    for sample in _matching(text, name, labels):
        key = sample.labels[label]
        totals[key] = totals.get(key, 0.0) + sample.value
    return totals


def sample_names(text: str) -> set[str]:
    return {
        sample.name
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
