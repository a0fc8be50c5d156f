"""Trace context across the bus (W3C `traceparent` / `tracestate` in message headers).

An event is created inside the business transaction: a PRODUCER span is started there
and its context is stored with the outbox row, so the relay, which publishes later and in
another task, sends the context of the code that caused the event. A consumer continues
it: its CONSUMER span's parent is that producer span, and whatever the handler does
(including events it writes) belongs to the same trace.

Only the OpenTelemetry API is a dependency: without an SDK the spans cost nothing and
context from an incoming trace still passes through. Configure an SDK (and an exporter)
in the service's start-up to record them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind

from forge_app_common import Envelope

tracer = trace.get_tracer("forge_app_platform")


def attributes(topic: str, envelope: Envelope) -> dict[str, str]:
    return {
        "messaging.destination.name": topic,
        "messaging.message.id": str(envelope.event_id),
        "forge.event.type": envelope.type,
    }


@contextmanager
def producer_span(topic: str, envelope: Envelope) -> Iterator[dict[str, str]]:
    """The span of an event's creation; yields the headers that carry its context."""
    with tracer.start_as_current_span(
        f"create {topic}", kind=SpanKind.PRODUCER, attributes=attributes(topic, envelope)
    ):
        headers: dict[str, str] = {}
        propagate.inject(headers)  # the globally configured propagator: W3C by default
        yield headers


@contextmanager
def consumer_span(
    topic: str, group: str, envelope: Envelope, headers: Mapping[str, str]
) -> Iterator[None]:
    """Handling one delivery, as a child of the span that created the event."""
    parent = propagate.extract(dict(headers))
    with tracer.start_as_current_span(
        f"process {topic}",
        context=parent,
        kind=SpanKind.CONSUMER,
        attributes={**attributes(topic, envelope), "messaging.consumer.group.name": group},
    ):
        yield


def text_headers(raw: Mapping[str, object] | None) -> dict[str, str]:
    """Broker headers as text (AMQP and Kafka may hand back bytes)."""
    out: dict[str, str] = {}
    for key, value in (raw or {}).items():
        if isinstance(value, bytes):
            out[key] = value.decode("utf-8", "replace")
        elif isinstance(value, str):
            out[key] = value
    return out
