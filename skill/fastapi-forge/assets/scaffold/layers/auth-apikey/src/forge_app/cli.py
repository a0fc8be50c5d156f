"""Developer commands for an API-key project.

    python -m forge_app.cli api-key alice                  # a new key for client alice
    python -m forge_app.cli api-key alice --env-file .env  # ... registered there

A key is printed once, on stdout, and stored nowhere: only its SHA-256 digest goes into
API_KEYS. With `--env-file`, the client's entry in that file's API_KEYS is added (or
replaced, which revokes its old key); otherwise the entry to add is printed on stderr.
Restart the app to load new keys.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from .security import new_api_key


class EnvFileError(Exception):
    pass


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m forge_app.cli")
    commands = parser.add_subparsers(dest="command", required=True)
    key = commands.add_parser("api-key", help="make a key for a client (prints the key)")
    key.add_argument("client", help="the client's name; requests authenticate as it")
    key.add_argument("--env-file", type=Path, help="add the key's digest to API_KEYS there")
    return parser


def parse_api_keys(value: str, where: str) -> dict[str, str]:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        value = value[1:-1]
    try:
        keys = json.loads(value or "{}")
    except json.JSONDecodeError as error:
        raise EnvFileError(f"{where}: API_KEYS is not JSON ({error.msg})") from None
    if not isinstance(keys, dict):
        raise EnvFileError(f'{where}: API_KEYS must be a JSON object {{"client": "digest"}}')
    return keys


def register(env_file: Path, client: str, key_digest: str) -> None:
    """Sets API_KEYS[client] in `env_file`, keeping every other line as it is."""
    try:
        lines = env_file.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise EnvFileError(f"{env_file}: no such file (cp .env.example .env first)") from None
    found: int | None = None
    keys: dict[str, str] = {}
    for number, line in enumerate(lines):
        name, sep, value = line.partition("=")
        if sep and name.strip().removeprefix("export ").strip() == "API_KEYS":
            found = number
            keys = parse_api_keys(value, f"{env_file}:{number + 1}")
    keys[client] = key_digest
    # Single quotes: dotenv and docker compose take the JSON inside literally.
    entry = f"API_KEYS='{json.dumps(keys, separators=(',', ':'))}'"
    if found is None:
        lines.append(entry)
    else:
        lines[found] = entry
    env_file.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    key, key_digest = new_api_key()
    if args.env_file is None:
        entry = json.dumps({args.client: key_digest})
        print(f"add to API_KEYS (only the digest is stored): {entry}", file=sys.stderr)
    else:
        try:
            register(args.env_file, args.client, key_digest)
        except EnvFileError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        print(f"{args.env_file}: API_KEYS now accepts this key as {args.client!r}", file=sys.stderr)
        if "API_KEYS" in os.environ:
            print(
                "warning: API_KEYS is also set in the environment, which wins over the file",
                file=sys.stderr,
            )
    print(key)
    return 0


if __name__ == "__main__":
    sys.exit(main())
