"""The routers `create_app` mounts, in order."""

from fastapi import APIRouter

from . import agents, health

ROUTERS: list[APIRouter] = [health.router, agents.router]
