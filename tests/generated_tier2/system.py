"""The generated Tier 2 system as local processes: scaffold, one shared virtualenv, a
database per service, services on fixed free ports (so a stopped one can come back on the
same address behind the gateway)."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from forge_testing import (
    ManagedProcess,
    free_port,
    run,
    start_uvicorn,
    throwaway_database,
)
from forge_testing.scaffolding import scaffold
from forge_testing.tokens import RsaKey
from forge_testing.venvs import Venv, create_venv

NAME = "shop"
# What every service held before user-service alone signed tokens: now signs nothing valid.
OLD_SHARED_SECRET = "e2e-tier2-secret-" + "x" * 40
# (folder, import path, uvicorn extra args, gateway prefix)
SERVICES = {
    "user-service": ("user_service.main:create_app", "users"),
    "notification-service": ("notification_service.main:create_app", "notify"),
    "agent-service": ("agent_service.main:create_app", "agents"),
}
EDITABLE = [
    "shared/common",
    "shared/platform",
    "services/user-service[dev]",
    "services/notification-service[dev]",
    "services/agent-service",
    "gateway[dev]",
]
# agent-service (a Tier 1 project) has a PEP 735 dev group, not a `dev` extra.
GROUPS = ["--group", "services/agent-service/pyproject.toml:dev"]


@dataclass
class Systems:
    """Every generated system the Tier 2 and Tier 3 suites run, and the ONE virtualenv
    they share: Tier 2's packages installed editable from the Redis variant, Tier 3's
    order services from its Redis variant, both broker clients. Another variant runs from
    its own sources ahead of those (`source_path`): same distributions, its own code."""

    tier2: dict[str, Path]
    tier3: dict[str, Path]
    venv: Venv


_systems: Systems | None = None


def shared_systems(tmp_path_factory: object) -> Systems:
    """Built once per test session, whichever suite asks first."""
    global _systems
    if _systems is None:
        import pytest

        assert isinstance(tmp_path_factory, pytest.TempPathFactory)
        parent = tmp_path_factory.mktemp("systems")
        started = time.monotonic()
        tier2 = {
            b: scaffold(parent / f"{NAME}-tier2-{b}", tier=2, name=NAME, broker=b)
            for b in ("redis", "rabbitmq", "kafka")
        }
        tier3 = {
            b: scaffold(parent / f"{NAME}-tier3-{b}", tier=3, name=NAME, broker=b)
            for b in ("redis", "rabbitmq")
        }
        editables = [arg for package in EDITABLE for arg in ("--editable", package)]
        orders = [
            arg
            for service in ("order-command", "order-query")
            for arg in (
                "--editable",
                str(tier3["redis"] / "services" / f"{service}[dev]"),
            )
        ]
        venv = create_venv(
            parent / "venv",
            *editables,
            *GROUPS,
            *orders,
            "aio-pika>=9.5.0",
            "aiokafka>=0.12.0",
            cwd=tier2["redis"],
        )
        print(
            f"\n[e2e] systems scaffolded and installed in {time.monotonic() - started:.0f}s"
        )
        _systems = Systems(tier2, tier3, venv)
    return _systems


def gateway_uvicorn_args(dockerfile: Path) -> tuple[str, ...]:
    """The uvicorn options of the generated gateway image's CMD (its HTTP protocol with the
    header deadline and size cap among them), so the system runs the gateway as deployed."""
    text = dockerfile.read_text(encoding="utf-8")
    start = text.index("CMD [")
    argv: list[str] = json.loads(text[start + 4 : text.index("]", start) + 1])
    assert argv[:2] == ["uvicorn", "microservice_gateway:app"], argv
    options = argv[2:]
    kept: list[str] = []
    # --host and --port are the test's own; the rest is the deployment's.
    skip = False
    for option in options:
        if skip:
            skip = False
        elif option in ("--host", "--port"):
            skip = True
        else:
            kept.append(option)
    assert "--http" in kept, (
        f"{dockerfile}: the gateway must run with its own HTTP protocol"
    )
    return tuple(kept)


@dataclass
class Service:
    name: str
    app: str
    port: int
    cwd: Path
    env: dict[str, str]
    venv: Venv
    log_dir: Path
    uvicorn_args: tuple[str, ...] = ()
    process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, **extra_env: str) -> None:
        """Starts the service on its port (the same one again after a stop) and waits
        until it is ready."""
        server = start_uvicorn(
            self.app,
            factory=True,
            python=self.venv.python,
            cwd=self.cwd,
            env={**self.env, **extra_env},
            log_dir=self.log_dir,
            health_path="/health/ready",
            extra_args=["--no-access-log", *self.uvicorn_args],
            name=self.name,
            port=self.port,
        )
        self.process = server.process

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()


@dataclass
class GeneratedTier2System:
    """A generated Tier 2 system running: its services (and gateway) as processes."""

    root: Path
    venv: Venv
    services: dict[str, Service] = field(default_factory=dict)
    databases: dict[str, str] = field(default_factory=dict)
    gateway: Service | None = None
    key: RsaKey | None = None  # user-service's signing key (JWT_PRIVATE_KEY_FILE)

    def token(self, client: httpx.Client, email: str, password: str) -> str:
        response = client.post(
            "/users/auth/token", json={"email": email, "password": password}
        )
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])


def source_path(project: Path) -> str:
    """Import paths of a variant's own sources, ahead of the shared venv's editable ones."""
    return os.pathsep.join(
        str(project / p)
        for p in (
            "shared/common/src",
            "shared/platform/src",
            "services/user-service/src",
            "services/notification-service/src",
            "services/agent-service/src",
            "services/order-command/src",
            "services/order-query/src",
        )
        if (project / p).is_dir()
    )


@contextmanager
def running_system(
    project: Path,
    venv: Venv,
    pg_admin_url: str,
    broker_url: str,
    log_dir: Path,
    names: tuple[str, ...],
    with_gateway: bool,
    shadow_sources: bool = False,
    **settings: str,
) -> Iterator[GeneratedTier2System]:
    system = GeneratedTier2System(root=project, venv=venv, key=RsaKey.generate())
    key_file = log_dir / f"jwt-private-{uuid.uuid4().hex[:6]}.pem"
    key_file.parent.mkdir(parents=True, exist_ok=True)
    key_file.write_bytes(system.key.pem)
    # user-service first: the others verify tokens with its JWKS.
    names = tuple(sorted(names, key=list(SERVICES).index))
    with ExitStack() as stack:
        common = venv.env() | {
            "JWT_AUDIENCE": "forge-api",
            "JWT_ISSUER": "forge-api",
            # agent-service (a Tier 1 project, --auth oauth2): user-service is its issuer.
            "OIDC_ISSUER": "forge-api",
            "OIDC_AUDIENCE": "forge-api",
            "BROKER_URL": broker_url,
            "OUTBOX_POLL_SECONDS": "0.1",
            "CONSUMER_CLAIM_IDLE_MS": "2000",
            "LOG_LEVEL": "WARNING",
            **settings,
        }
        if shadow_sources:
            common["PYTHONPATH"] = source_path(project)
        for name in names:
            app, _prefix = SERVICES[name]
            db = stack.enter_context(
                throwaway_database(pg_admin_url, prefix=f"e2e_{name[:5]}")
            )
            system.databases[name] = db
            env = common | {"DATABASE_URL": db}
            if name == "user-service":
                env["JWT_PRIVATE_KEY_FILE"] = str(key_file)
            if name == "agent-service":
                metrics_dir = log_dir / f"prom-{uuid.uuid4().hex[:6]}"
                metrics_dir.mkdir(parents=True)
                env |= {
                    "AGENT_RUNNER": "fake",
                    # Its job queue is on Redis whatever the broker is.
                    "REDIS_URL": common.get("REDIS_URL", broker_url),
                    "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
                    "RATE_LIMIT_REQUESTS": common.get("RATE_LIMIT_REQUESTS", "1000"),
                }
            cwd = project / "services" / name
            run(
                [str(venv.bin("alembic")), "upgrade", "head"],
                cwd=cwd,
                env=env,
                timeout=120,
            )
            service = Service(name, app, free_port(), cwd, env, venv, log_dir)
            stack.callback(service.stop)
            service.start()
            system.services[name] = service
            if name == "user-service":
                jwks = f"{service.url}/.well-known/jwks.json"
                common |= {"JWKS_URL": jwks, "OIDC_JWKS_URL": jwks}
        if with_gateway:
            routes = {
                SERVICES[n][1]: f"http://127.0.0.1:{s.port}"
                for n, s in system.services.items()
            }
            gateway_env = common | {
                "SERVICES": json.dumps(routes),
                "PUBLIC_PATHS": '["/users/auth"]',
                "JWT_ISSUER": "forge-api",
                "BREAKER_FAILURE_THRESHOLD": "3",
                "BREAKER_OPEN_SECONDS": "2",
                "RETRY_ATTEMPTS": "0",
                "UPSTREAM_TIMEOUT_SECONDS": "5",
            }
            gateway = Service(
                "gateway",
                "microservice_gateway:create_app",
                free_port(),
                project / "gateway",
                gateway_env,
                venv,
                log_dir,
                uvicorn_args=gateway_uvicorn_args(project / "gateway" / "Dockerfile"),
            )
            stack.callback(gateway.stop)
            gateway.start()
            system.gateway = gateway
        yield system
