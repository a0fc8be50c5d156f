"""The generated Tier 3 order services as local processes: command API, relay, query API and
projector (real uvicorn processes), each side with a throwaway PostgreSQL database, on the
variant's broker (a Redis database or a RabbitMQ vhost of the test's own)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from forge_testing import free_port, run, throwaway_database
from forge_testing.metrics import metric_total, sample_names
from forge_testing.tokens import JwtMinter, RsaKey
from forge_testing.venvs import Venv
from generated_tier2.system import Service

NAME = "shop"
# user-service's signing key: the tests mint users' tokens as user-service does.
KEY = RsaKey.generate()
TOKENS = JwtMinter("", "forge-api", "forge-api", lifetime=1800, key=KEY)
# order-query's client secret for user-service's client-credentials grant (its rebuild).
CLIENT_SECRET = secrets.token_urlsafe(32)
TOPIC = "orders.events"
# process -> (service folder, uvicorn factory, database side)
PROCESSES = {
    "command": ("order-command", "order_command.main:create_app", "command"),
    "relay": ("order-command", "order_command.relay:create_app", "command"),
    "query": ("order-query", "order_query.main:create_app", "query"),
    "projector": ("order-query", "order_query.projector:create_app", "query"),
}


class Db:
    """A PostgreSQL connection on an event loop of its own, usable from synchronous tests;
    it can hold a transaction (and its locks) open while the test drives other processes."""

    def __init__(self, url: str) -> None:
        self.loop = asyncio.new_event_loop()
        dsn = url.replace("postgresql+asyncpg://", "postgresql://")
        self.conn: asyncpg.Connection = self.loop.run_until_complete(
            asyncpg.connect(dsn)
        )

    def value(self, sql: str, *args: Any) -> Any:
        return self.loop.run_until_complete(self.conn.fetchval(sql, *args))

    def rows(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        records = self.loop.run_until_complete(self.conn.fetch(sql, *args))
        return [tuple(record.values()) for record in records]

    def execute(self, sql: str, *args: Any) -> None:
        self.loop.run_until_complete(self.conn.execute(sql, *args))

    def close(self) -> None:
        self.loop.run_until_complete(self.conn.close())
        self.loop.close()


@dataclass
class Orders:
    project: Path
    venv: Venv
    broker: str = "redis"
    processes: dict[str, Service] = field(default_factory=dict)
    databases: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)

    def client(self, process: str, subject: str = "customer-1") -> httpx.Client:
        return httpx.Client(
            base_url=self.processes[process].url,
            headers=TOKENS.bearer(subject),
            timeout=10,
        )

    def kill(self, process: str) -> None:
        """SIGKILL: no shutdown code runs, as when a node loses power."""
        self.processes[process].kill()

    def metric(self, process: str, name: str, **labels: str) -> float:
        text = httpx.get(f"{self.processes[process].url}/metrics", timeout=5).text
        return metric_total(text, name, **labels)

    def metric_names(self, process: str) -> set[str]:
        text = httpx.get(f"{self.processes[process].url}/metrics", timeout=5).text
        return sample_names(text)

    def service_token(
        self, client_id: str = "order-query", secret: str = CLIENT_SECRET
    ) -> str:
        """A service token for the relay, from user-service's client-credentials grant."""
        response = httpx.post(
            f"{self.processes['users'].url}/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": secret,
                "audience": "order-command",
            },
            timeout=10,
        )
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    def rebuild(self) -> dict[str, Any]:
        out = run(
            [str(self.venv.python), "-m", "order_query.rebuild"],
            cwd=self.project / "services" / "order-query",
            env=self.env
            | {
                "DATABASE_URL": self.databases["query"],
                "EVENT_FEED_URL": self.processes["relay"].url,
                "TOKEN_URL": f"{self.processes['users'].url}/oauth/token",
                "SERVICE_CLIENT_SECRET": CLIENT_SECRET,
            },
            timeout=120,
        ).stdout
        result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        return result


@contextmanager
def running_orders(
    project: Path,
    venv: Venv,
    pg_admin_url: str,
    broker_url: str,
    log_dir: Path,
    python_path: str,
) -> Iterator[Orders]:
    """`python_path`: the variant's own sources, ahead of the shared venv's."""
    orders = Orders(project=project, venv=venv)
    key_file = log_dir / "jwt-private.pem"
    key_file.parent.mkdir(parents=True, exist_ok=True)
    key_file.write_bytes(KEY.pem)
    orders.env = venv.env() | {
        "PYTHONPATH": python_path,
        "BROKER_URL": broker_url,
        "OUTBOX_POLL_SECONDS": "0.05",
        "OUTBOX_WATCH_SECONDS": "0.5",
        "CONSUMER_NAME": "projector-0",
        "CONSUMER_CLAIM_IDLE_MS": "1000",
        "LOG_LEVEL": "WARNING",
    }
    with ExitStack() as stack:
        # user-service: the tokens' only issuer, whose JWKS the order services verify with.
        users_db = stack.enter_context(
            throwaway_database(pg_admin_url, prefix="e2e3_users")
        )
        users_dir = project / "services" / "user-service"
        run(
            [str(venv.bin("alembic")), "upgrade", "head"],
            cwd=users_dir,
            env=orders.env | {"DATABASE_URL": users_db},
            timeout=120,
        )
        clients = {
            "order-query": {
                "secret_sha256": hashlib.sha256(CLIENT_SECRET.encode()).hexdigest(),
                "audiences": ["order-command"],
            }
        }
        users_env = orders.env | {
            "DATABASE_URL": users_db,
            "JWT_PRIVATE_KEY_FILE": str(key_file),
            "SERVICE_CLIENTS": json.dumps(clients),
        }
        users = Service("users", "user_service.main:create_app", free_port(), users_dir,
                        users_env, venv, log_dir)  # fmt: skip
        stack.callback(users.stop)
        users.start()
        orders.processes["users"] = users
        orders.env["JWKS_URL"] = f"{users.url}/.well-known/jwks.json"
        for side, folder in (("command", "order-command"), ("query", "order-query")):
            url = stack.enter_context(
                throwaway_database(pg_admin_url, prefix=f"e2e3_{side}")
            )
            orders.databases[side] = url
            run(
                [str(venv.bin("alembic")), "upgrade", "head"],
                cwd=project / "services" / folder,
                env=orders.env | {"DATABASE_URL": url},
                timeout=120,
            )
        for name, (folder, app, side) in PROCESSES.items():
            env = orders.env | {"DATABASE_URL": orders.databases[side]}
            service = Service(
                name,
                app,
                free_port(),
                project / "services" / folder,
                env,
                venv,
                log_dir,
            )
            stack.callback(service.stop)
            service.start()
            orders.processes[name] = service
        yield orders
