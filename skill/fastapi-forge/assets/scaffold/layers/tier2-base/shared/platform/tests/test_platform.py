import pytest
from fastapi import HTTPException
from pydantic import ValidationError

from forge_app_platform.auth import TokenService
from forge_app_platform.settings import ServiceSettings

SECRET = "platform-test-secret-" + "x" * 32


def settings(**overrides: object) -> ServiceSettings:
    return ServiceSettings(service_name="test", jwt_secret=SECRET, **overrides)  # type: ignore[arg-type]


def test_issued_tokens_verify_and_carry_the_subject() -> None:
    tokens = TokenService(settings())
    token, expires_in = tokens.issue("user-1")
    assert expires_in == 30 * 60
    assert tokens.verify(token).subject == "user-1"


def test_tokens_for_another_audience_are_refused() -> None:
    token, _ = TokenService(settings(jwt_audience="other")).issue("user-1")
    with pytest.raises(HTTPException) as caught:
        TokenService(settings()).verify(token)
    assert caught.value.status_code == 401


def test_short_secrets_are_refused_at_start_up() -> None:
    with pytest.raises(ValidationError, match="at least 32 bytes"):
        ServiceSettings(service_name="test", jwt_secret="short")  # type: ignore[arg-type]
