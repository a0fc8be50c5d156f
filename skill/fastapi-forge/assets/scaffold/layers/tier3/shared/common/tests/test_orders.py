import uuid
from decimal import Decimal

import pytest
from pydantic import ValidationError

from forge_app_common import Envelope, UnknownEventError
from forge_app_common.orders import (
    OrderCancelled,
    OrderPlaced,
    parse_order_event,
)


def test_order_events_round_trip_with_exact_money() -> None:
    placed = OrderPlaced(
        order_id=uuid.uuid4(), version=1, customer_id="c-1", total=Decimal("19.90")
    )
    envelope = Envelope.wrap(placed, producer="order-command")
    decoded = Envelope.model_validate_json(envelope.model_dump_json())
    assert decoded.data["total"] == "19.90"  # a string on the wire: no float rounding
    parsed = parse_order_event(decoded)
    assert parsed == placed
    assert isinstance(parsed, OrderPlaced)
    assert parsed.total == Decimal("19.90")


def test_versions_start_at_one_and_money_is_positive() -> None:
    with pytest.raises(ValidationError):
        OrderCancelled(order_id=uuid.uuid4(), version=0, reason="x")
    with pytest.raises(ValidationError):
        OrderPlaced(order_id=uuid.uuid4(), version=1, customer_id="c", total=Decimal("-1.00"))


def test_unknown_order_event_versions_are_refused() -> None:
    envelope = Envelope(type="order.placed", schema_version=9, producer="x", data={})
    with pytest.raises(UnknownEventError, match=r"order\.placed v9"):
        parse_order_event(envelope)
