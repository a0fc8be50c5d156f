"""Developer commands for a JWT project.

    python -m forge_app.cli dev-token --sub alice [--scope S] [--minutes 60]

prints an access token this service accepts, signed with the configured JWT_SECRET (from
`.env` or the environment, as the app reads it), for curl and local clients. Real users get
their tokens from your login flow; so the command refuses to run with ENVIRONMENT=prod.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from .config import Settings
from .security import create_access_token


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m forge_app.cli")
    commands = parser.add_subparsers(dest="command", required=True)
    token = commands.add_parser(
        "dev-token", help="print a token for local use, signed with JWT_SECRET"
    )
    token.add_argument("--sub", required=True, help="the caller's subject (user id)")
    token.add_argument("--scope", action="append", default=[], help="a scope to grant (repeatable)")
    token.add_argument("--minutes", type=int, help="lifetime (default JWT_ACCESS_TOKEN_MINUTES)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as error:
        # Without the input values: they may be secrets.
        problems = "".join(
            f"\n  {'.'.join(map(str, item['loc'])).upper()}: {item['msg']}"
            for item in error.errors(include_input=False)
        )
        print(f"error: settings (.env or environment):{problems}", file=sys.stderr)
        return 1
    if settings.environment == "prod":
        print(
            "error: dev-token refuses to run with ENVIRONMENT=prod: issue "
            "production tokens from your login flow",
            file=sys.stderr,
        )
        return 1
    if args.minutes is not None:
        if args.minutes < 1:
            print("error: --minutes must be at least 1", file=sys.stderr)
            return 2
        settings = settings.model_copy(update={"jwt_access_token_minutes": args.minutes})
    print(create_access_token(settings, args.sub, scopes=args.scope))
    return 0


if __name__ == "__main__":
    sys.exit(main())
