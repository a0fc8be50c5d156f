"""The routers `create_app` mounts, in order. Add your own here."""

from fastapi import APIRouter

from . import health, identity

ROUTERS: list[APIRouter] = [health.router, identity.router]
