"""Helpers for the Tier 2 template tests: the gateway template and small upstream
services (upstream_app.py), each a real uvicorn process on a free port, JWTs, and the
token issuer's JWKS (served from this process on loopback, counting its fetches)."""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

from forge_testing import TEMPLATES, Server, start_uvicorn
from forge_testing.tokens import JwtMinter, RsaKey

HERE = Path(__file__).resolve().parent
# What a service holding the old shared secret would sign with (no longer accepted).
SECRET = "tier2-gateway-tests-" + "s" * 48
AUDIENCE = "forge-api"
ISSUER = "forge-api"
KEY = RsaKey.generate()  # the issuer's (user-service's) signing key
TOKENS = JwtMinter(SECRET, AUDIENCE, ISSUER, key=KEY)


class JwksServer:
    """The issuer's /.well-known/jwks.json on loopback; `keys` may change (rotation) and
    `fetches` counts the GETs (a flood of unknown kids must not raise it much)."""

    def __init__(self, *keys: RsaKey) -> None:
        self.keys = list(keys)
        self.fetches = 0
        jwks = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                jwks.fetches += 1
                body = json.dumps({"keys": [k.jwk() for k in jwks.keys]}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/.well-known/jwks.json"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@functools.cache
def shared_jwks() -> JwksServer:
    return JwksServer(KEY)


# The interpreter of the gateway process: set it to a venv holding the minimum versions
# named in the template's docstring to check them.
GATEWAY_PYTHON = os.environ.get("TIER2_GATEWAY_PYTHON") or sys.executable
# The folder of the microservice_gateway.py that runs: set it to run these tests against
# another copy (an older one, to see a test fail before its fix).
GATEWAY_DIR = Path(os.environ.get("TIER2_GATEWAY_DIR") or TEMPLATES)
# The uvicorn flags the template's docstring prescribes (and the deployment files use):
# its own protocol (request heads bounded in size and time) and, as nothing sits in
# front of this gateway, no trust in client-sent X-Forwarded-*.
GATEWAY_SERVER_ARGS = [
    "--http",
    "microservice_gateway:GatewayHTTPProtocol",
    "--h11-max-incomplete-event-size",
    "16384",
    "--timeout-keep-alive",
    "5",
    "--no-proxy-headers",
]

# Small numbers so that the tests reach every breaker state in a few calls. The open
# interval is long enough that "open" is still observable after the failing calls.
GATEWAY_DEFAULTS = {
    "JWT_AUDIENCE": AUDIENCE,
    "JWT_ISSUER": ISSUER,
    "BREAKER_FAILURE_THRESHOLD": "3",
    "BREAKER_OPEN_SECONDS": "4",
    "BREAKER_HALF_OPEN_MAX_CALLS": "1",
    "RETRY_ATTEMPTS": "1",
    "RETRY_BACKOFF_SECONDS": "0.01",
    "UPSTREAM_TIMEOUT_SECONDS": "5",
    "HEALTH_TIMEOUT_SECONDS": "1",
    "PUBLIC_PATHS": json.dumps(["/users/echo/public"]),
}


def user_auth() -> dict[str, str]:
    """The Authorization header of a valid caller (alice)."""
    return TOKENS.bearer("alice")


def _settings_env(extra: dict[str, str]) -> dict[str, str]:
    # The gateway reads its settings from the environment: start from a clean slate.
    keys = set(GATEWAY_DEFAULTS) | {
        "SERVICES",
        "UPSTREAM_NAME",
        "JWKS_URL",
        "JWT_SECRET",
    }
    env = {k: v for k, v in os.environ.items() if k not in keys}
    env.update(extra)
    return env


@dataclass
class GatewayWithUpstreams:
    """A gateway and its upstreams; `upstreams` maps the route prefix to its server."""

    log_dir: Path
    workdir: Path
    gateway: Server | None = None
    upstreams: dict[str, Server] = field(default_factory=dict)
    stopped: list[Server] = field(default_factory=list)

    @property
    def url(self) -> str:
        assert self.gateway is not None
        return self.gateway.url

    def start_upstream(self, name: str, port: int | None = None) -> Server:
        server = start_uvicorn(
            "upstream_app:app",
            log_dir=self.log_dir,
            python=sys.executable,
            cwd=self.workdir,
            env=_settings_env({"UPSTREAM_NAME": name}),
            extra_args=["--app-dir", str(HERE)],
            name=f"upstream-{name}",
            port=port,
        )
        self.upstreams[name] = server
        return server

    def stop_upstream(self, name: str) -> None:
        server = self.upstreams[name]
        server.stop()
        self.stopped.append(server)

    def restart_upstream(self, name: str) -> Server:
        """Starts `name` again on the port it had, as a returning service would."""
        return self.start_upstream(name, port=self.upstreams[name].port)

    def start_gateway(self, services: dict[str, Any], **settings: str) -> Server:
        env = {"JWKS_URL": shared_jwks().url, **GATEWAY_DEFAULTS, **settings}
        env["SERVICES"] = json.dumps(services)
        self.gateway = start_uvicorn(
            "microservice_gateway:app",
            log_dir=self.log_dir,
            python=GATEWAY_PYTHON,
            cwd=self.workdir,
            env=_settings_env(env),
            extra_args=["--app-dir", str(GATEWAY_DIR), *GATEWAY_SERVER_ARGS],
            name="gateway",
        )
        return self.gateway

    def stop(self) -> None:
        for server in [self.gateway, *self.upstreams.values(), *self.stopped]:
            if server is not None:
                server.stop()


def standard_services(
    system: GatewayWithUpstreams, **users_spec: Any
) -> dict[str, Any]:
    """users (required, plus `users_spec`), agents, and `bare`: users again with its
    prefix stripped."""
    users = system.upstreams["users"].url
    return {
        "users": {"url": users, "required": True, **users_spec},
        "agents": system.upstreams["agents"].url,
        "bare": {"url": users, "strip_prefix": True},
    }


def new_system(tmp: Path) -> GatewayWithUpstreams:
    workdir = tmp / "work"  # no .env here: settings come from the environment only
    workdir.mkdir(parents=True, exist_ok=True)
    return GatewayWithUpstreams(log_dir=tmp / "logs", workdir=workdir)


@functools.cache
def gateway_module() -> ModuleType:
    """The gateway template imported in this process (for its classes and settings)."""
    spec = importlib.util.spec_from_file_location(
        "microservice_gateway", TEMPLATES / "microservice_gateway.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through it
    spec.loader.exec_module(module)
    return module
