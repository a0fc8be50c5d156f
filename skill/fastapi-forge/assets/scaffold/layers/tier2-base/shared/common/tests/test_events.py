import uuid

import pytest

from forge_app_common import Envelope, UnknownEventError, UserRegistered, parse_event


def test_envelope_round_trip_keeps_id_and_payload() -> None:
    payload = UserRegistered(user_id=uuid.uuid4(), email="a@example.com", display_name="A")
    envelope = Envelope.wrap(payload, producer="user-service", correlation_id="req-1")
    decoded = Envelope.model_validate_json(envelope.model_dump_json())
    assert decoded.event_id == envelope.event_id
    assert decoded.type == "user.registered"
    assert parse_event(decoded) == payload


def test_consumers_ignore_fields_added_by_newer_producers() -> None:
    user_id = uuid.uuid4()
    envelope = Envelope(
        type="user.registered",
        schema_version=1,
        producer="user-service",
        data={"user_id": str(user_id), "email": "b@example.com", "display_name": "B", "x": 1},
        future_field="ignored",  # type: ignore[call-arg]
    )
    assert parse_event(envelope) == UserRegistered(
        user_id=user_id, email="b@example.com", display_name="B"
    )


def test_unknown_versions_are_refused_not_guessed() -> None:
    envelope = Envelope(type="user.registered", schema_version=2, producer="x", data={})
    with pytest.raises(UnknownEventError, match=r"user\.registered v2"):
        parse_event(envelope)
