import hmac
import uuid
from typing import Annotated, Any, cast

from fastapi import APIRouter, Depends, Form, HTTPException, Request, Response, status
from pydantic import BaseModel, Field
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from forge_app_common import (
    TOPIC_USERS,
    Envelope,
    TokenOut,
    UserDeleted,
    UserOut,
    UserRegistered,
)
from forge_app_platform.app import RuntimeDep
from forge_app_platform.auth import CurrentPrincipal
from forge_app_platform.outbox import add_event

from .config import Settings
from .keys import SigningKeys, secret_hash
from .models import User
from .passwords import hash_password, verify_password

router = APIRouter(prefix="/users", tags=["users"])
# Not under /users: the gateway does not route them. Services call user-service directly.
well_known = APIRouter(tags=["keys"])


def signing_keys(request: Request) -> SigningKeys:
    return cast(SigningKeys, request.app.state.keys)


Keys = Annotated[SigningKeys, Depends(signing_keys)]
Email = Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=320)]


class SignUp(BaseModel):
    email: Email
    display_name: str = Field(min_length=1, max_length=200)
    password: str = Field(min_length=8, max_length=256)


class Credentials(BaseModel):
    email: Email
    password: str = Field(max_length=256)


async def current_user_id(principal: CurrentPrincipal) -> uuid.UUID:
    """The user a token names. A validly signed token whose subject is not a user id (a
    service's token, or one minted with the shared secret) names nobody here: 401."""
    try:
        return uuid.UUID(principal.subject)
    except ValueError:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "the token does not identify a user",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        ) from None


CurrentUserId = Annotated[uuid.UUID, Depends(current_user_id)]


@router.post("/auth/signup", status_code=status.HTTP_201_CREATED)
async def sign_up(body: SignUp, request: Request, runtime: RuntimeDep) -> UserOut:
    user = User(
        id=uuid.uuid4(),
        email=body.email.lower(),
        display_name=body.display_name,
        password_hash=await hash_password(body.password),
    )
    event = UserRegistered(user_id=user.id, email=user.email, display_name=user.display_name)
    try:
        async with runtime.db.sessions() as session, session.begin():
            session.add(user)
            # Same transaction as the user row: no user without its event, nor the reverse.
            add_event(
                session,
                TOPIC_USERS,
                Envelope.wrap(
                    event,
                    producer=runtime.settings.service_name,
                    correlation_id=request.state.request_id,
                ),
            )
    except IntegrityError:
        raise HTTPException(status.HTTP_409_CONFLICT, "email already registered") from None
    return UserOut.model_validate(user)


@router.post("/auth/token")
async def token(body: Credentials, runtime: RuntimeDep, keys: Keys) -> TokenOut:
    async with runtime.db.sessions() as session:
        user = await session.scalar(select(User).where(User.email == body.email.lower()))
    # Same answer (and similar time) for an unknown email and a wrong password.
    stored = user.password_hash if user is not None else bytes(48)
    if not await verify_password(body.password, stored) or user is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong email or password")
    access_token, expires_in = keys.user_token(str(user.id))
    return TokenOut(access_token=access_token, expires_in=expires_in)


@router.get("/me")
async def me(user_id: CurrentUserId, runtime: RuntimeDep) -> UserOut:
    async with runtime.db.sessions() as session:
        user = await session.get(User, user_id)
    if user is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "user not found")
    return UserOut.model_validate(user)


@router.delete("/me", status_code=status.HTTP_204_NO_CONTENT)
async def delete_me(user_id: CurrentUserId, request: Request, runtime: RuntimeDep) -> Response:
    """Deletes the account; other services drop what they hold for it on `user.deleted`
    (agent-service cancels the user's queued and running jobs)."""
    async with runtime.db.sessions() as session, session.begin():
        deleted = await session.scalar(delete(User).where(User.id == user_id).returning(User.id))
        if deleted is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "user not found")
        add_event(
            session,
            TOPIC_USERS,
            Envelope.wrap(
                UserDeleted(user_id=user_id),
                producer=runtime.settings.service_name,
                correlation_id=request.state.request_id,
            ),
        )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/count")
async def count(principal: CurrentPrincipal, runtime: RuntimeDep) -> dict[str, int]:
    async with runtime.db.sessions() as session:
        total = await session.scalar(select(func.count()).select_from(User))
    return {"users": total or 0}


@well_known.get("/.well-known/jwks.json")
async def jwks(keys: Keys, response: Response) -> dict[str, Any]:
    """The public keys tokens are verified with (the current one, and the previous one
    during a rotation); public, and cached by the verifiers."""
    response.headers["Cache-Control"] = "public, max-age=300"
    return keys.jwks


@well_known.post("/oauth/token")
async def service_token(
    runtime: RuntimeDep,
    keys: Keys,
    grant_type: Annotated[str, Form()],
    client_id: Annotated[str, Form(max_length=100)],
    client_secret: Annotated[str, Form(max_length=200)],
    audience: Annotated[str, Form(max_length=100)],
) -> dict[str, Any]:
    """OAuth2 client-credentials grant (RFC 6749 4.4): a short-lived service token for
    one called service (`audience`), for a client listed in SERVICE_CLIENTS."""
    if grant_type != "client_credentials":
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "unsupported_grant_type")
    client = cast(Settings, runtime.settings).service_clients.get(client_id)
    # Compared even for an unknown client: the answer's time does not tell which it was.
    expected = client.secret_sha256 if client is not None else "0" * 64
    if not hmac.compare_digest(secret_hash(client_secret), expected) or client is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid_client")
    if audience not in client.audiences:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "invalid_target")
    token, expires_in = keys.service_token(client_id, audience)
    return {"access_token": token, "token_type": "Bearer", "expires_in": expires_in}
