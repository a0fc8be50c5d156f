"""AWS Lambda entry point: API Gateway (HTTP API, payload v2) events through Mangum.

The handler is `forge_app.lambda_handler.handler` (see template.yaml). Mangum runs the
app's lifespan around each invocation, so database and Redis clients are opened and closed
cleanly. Lambda answers one request per invocation: SSE responses arrive whole, and
WebSockets need API Gateway's WebSocket API; use a container platform for streaming.
"""

from __future__ import annotations

from mangum import Mangum

from .main import create_app

handler = Mangum(create_app(), lifespan="auto")
