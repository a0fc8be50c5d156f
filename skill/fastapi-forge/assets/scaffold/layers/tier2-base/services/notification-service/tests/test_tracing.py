"""Trace context travels with events: the consumer's span is a child of the span that
created the event, through the outbox, the relay and the real broker (BROKER_URL)."""

import asyncio
import uuid
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import select

from forge_app_common import TOPIC_USERS, Envelope, UserRegistered
from forge_app_platform.outbox import add_event, relay_once
from forge_app_platform.tables import OutboxEvent


@pytest.fixture(scope="module")
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    # The platform's tracer follows the global provider from here on (once per process).
    trace.set_tracer_provider(provider)
    yield exporter
    exporter.clear()


def find(exporter: InMemorySpanExporter, name: str, event_id: uuid.UUID) -> ReadableSpan | None:
    for span in exporter.get_finished_spans():
        attributes = span.attributes or {}
        if span.name == name and attributes.get("messaging.message.id") == str(event_id):
            return span
    return None


async def test_the_consumer_span_continues_the_trace_of_the_producer(
    app: FastAPI, spans: InMemorySpanExporter
) -> None:
    runtime = app.state.runtime
    envelope = Envelope.wrap(
        UserRegistered(user_id=uuid.uuid4(), email="t@example.com", display_name="Tia"),
        producer="test",
    )
    with trace.get_tracer("test").start_as_current_span("POST /users/auth/signup") as request:
        async with runtime.db.sessions() as session, session.begin():
            add_event(session, TOPIC_USERS, envelope)
    # Published from here, outside any span: only the headers can carry the context.
    async with asyncio.timeout(15):
        while True:
            try:
                if await relay_once(runtime.db.sessions, runtime.broker):
                    break
            except Exception:  # RabbitMQ refuses events until the consumer's queue is bound
                await asyncio.sleep(0.2)
        while (consumer := find(spans, f"process {TOPIC_USERS}", envelope.event_id)) is None:
            await asyncio.sleep(0.05)

    producer = find(spans, f"create {TOPIC_USERS}", envelope.event_id)
    assert producer is not None
    assert producer.parent is not None
    trace_id = request.get_span_context().trace_id
    assert producer.parent.span_id == request.get_span_context().span_id
    assert consumer.parent is not None
    assert consumer.parent.span_id == producer.context.span_id
    assert consumer.context.trace_id == producer.context.trace_id == trace_id
    assert consumer.kind is trace.SpanKind.CONSUMER
    async with runtime.db.sessions() as session:
        headers = await session.scalar(
            select(OutboxEvent.headers).where(OutboxEvent.id == envelope.event_id)
        )
    assert headers is not None
    # W3C: version-trace id-parent id-flags (flags vary: sampled, random trace id).
    version, traced, parent, _flags = headers["traceparent"].split("-")
    span_id = producer.context.span_id
    assert (version, traced, parent) == ("00", f"{trace_id:032x}", f"{span_id:016x}")
