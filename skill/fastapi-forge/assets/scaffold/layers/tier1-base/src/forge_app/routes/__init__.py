"""The routers `create_app` mounts, in order."""

from fastapi import APIRouter

from . import agents, health, identity

ROUTERS: list[APIRouter] = [health.router, identity.router, agents.router]
