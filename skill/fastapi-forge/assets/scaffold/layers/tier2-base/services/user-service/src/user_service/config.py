from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, Field, field_validator

from forge_app_platform.settings import ServiceSettings


class ServiceClient(BaseModel):
    """A service allowed the client-credentials grant: its secret's SHA-256 and the
    services (audiences) it may call. `python -m user_service.keys client` makes both."""

    secret_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    audiences: list[str] = Field(min_length=1)


class Settings(ServiceSettings):
    service_name: str = "user-service"
    # The system's only signing key (PEM, RSA); the error says how to create one.
    jwt_private_key_file: Path = Field(default=Path(), validate_default=True)
    # During a rotation: the previous key's public PEM, still published in the JWKS.
    jwt_previous_public_key_file: Path | None = None
    jwt_access_token_minutes: int = Field(default=30, ge=1)
    service_token_minutes: int = Field(default=5, ge=1)
    # JSON: {"order-query": {"secret_sha256": "...", "audiences": ["order-command"]}}
    service_clients: dict[str, ServiceClient] = Field(default_factory=dict)

    @field_validator("jwt_private_key_file", mode="after")
    @classmethod
    def key_file_set(cls, value: Path) -> Path:
        if value == Path():
            raise ValueError(
                "JWT_PRIVATE_KEY_FILE is not set: create a key with `python -m "
                "user_service.keys create secrets/jwt-private.pem` and name that file"
            )
        return value


@lru_cache
def get_settings() -> Settings:
    return Settings()
