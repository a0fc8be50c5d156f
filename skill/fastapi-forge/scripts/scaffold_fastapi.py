#!/usr/bin/env python3
"""Generate a FastAPI project from the skill's template trees.

Standard library only (Python 3.10+), so an agent can run it before any project exists:

    python scaffold_fastapi.py --name my-agent-api --db postgres --auth jwt --out ./my-agent-api

Tier 1 renders `assets/scaffold/layers/tier1-base/` and then, for each option, the overlay folder
`assets/scaffold/layers/<flag>-<value>/`. Overlays add or replace whole files. Special
files in an overlay are never copied:

- `_deps.txt`: PEP 508 requirements merged into `[project] dependencies` of pyproject.toml;
- `_env.txt`: lines appended to `.env.example`;
- `_remove.txt`: output paths (files, or folders ending in `/`) that the option drops.

Markdown files may hold option-specific parts between `<!-- forge:if FLAG=VALUE -->` (or
`FLAG=V1|V2`) and `<!-- forge:end -->` lines: kept when the option matches, dropped otherwise;
the marker lines themselves never reach the project.

The trees are real projects named `forge-app` (package `forge_app`); rendering renames those
tokens to the chosen name. The output is written to a temporary folder next to the target
and moved into place only when complete, so a failure leaves nothing half-written.
"""

from __future__ import annotations

import argparse
import keyword
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

SKILL_DIR = Path(__file__).resolve().parent.parent
SCAFFOLD_DIR = SKILL_DIR / "assets" / "scaffold"
LAYERS_DIR = SCAFFOLD_DIR / "layers"

TEMPLATE_PROJECT = "forge-app"
TEMPLATE_PACKAGE = "forge_app"

# Flag -> (allowed values, default). The order is the order overlays are applied in.
OPTIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "db": (("postgres", "mongodb", "redis", "none"), "postgres"),
    "auth": (("jwt", "oauth2", "apikey", "none"), "jwt"),
    "queue": (("arq", "celery", "none"), "arq"),
    "agent": (
        ("anthropic", "claude-agent-sdk", "openai-agents", "langgraph", "crewai", "custom", "none"),
        "anthropic",
    ),
    "deploy": (("compose", "k8s", "cloudrun", "serverless"), "compose"),
}

SPECIAL_FILES = {"_deps.txt", "_env.txt", "_remove.txt"}
SKIPPED_NAMES = {"__pycache__", ".ruff_cache", ".pytest_cache", ".mypy_cache"}
NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
CONDITION_RE = re.compile(
    r"^\s*<!--\s*forge:if\s+(?P<flag>[a-z]+)=(?P<values>[a-z0-9|-]+)\s*-->\s*$"
)
CONDITION_END_RE = re.compile(r"^\s*<!--\s*forge:end\s*-->\s*$")
DEPS_BLOCK_RE = re.compile(r"^dependencies = \[\n(?P<body>.*?)^\]\n", re.MULTILINE | re.DOTALL)

BROKERS = ("redis", "rabbitmq", "kafka")
# Tier 2's agent-service is a Tier 1 project with these options (compose runs its ARQ worker).
TIER2_AGENT_SERVICE = {"db": "postgres", "auth": "jwt", "queue": "arq", "deploy": "compose"}
# Skill templates copied into the Tier 2 output, so the system runs the same gateway code.
TIER2_TEMPLATES = {
    "gateway/microservice_gateway.py": "microservice_gateway.py",
    "k8s/gateway.yaml": "k8s_deployment.yaml",
}


class ScaffoldError(Exception):
    """A problem the user can fix; printed without a traceback."""


@dataclass
class Plan:
    """Everything to write, computed before anything touches the disk."""

    files: dict[str, bytes] = field(default_factory=dict)
    overlays: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def package_name(project: str) -> str:
    return project.lower().replace("-", "_")


def validate_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise argparse.ArgumentTypeError(
            f"invalid project name {name!r}: use a letter first, then letters, digits, '-' or '_' "
            "(at most 64 characters)"
        )
    package = package_name(name)
    if keyword.iskeyword(package) or package in sys.stdlib_module_names:
        raise argparse.ArgumentTypeError(
            f"project name {name!r} gives the package {package!r}, which shadows a Python "
            "keyword or standard library module: choose another name"
        )
    return name


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scaffold_fastapi.py",
        description="Generate a production FastAPI system (tier 1, 2 or 3).",
    )
    parser.add_argument("--tier", choices=("1", "2", "3"), default="1", help="scale tier")
    parser.add_argument(
        "--name", type=validate_name, default="forge-app", help="project name (default forge-app)"
    )
    parser.add_argument("--out", type=Path, help="output folder (default ./<name>)")
    for flag, (values, default) in OPTIONS.items():
        parser.add_argument(f"--{flag}", choices=values, default=default, help=f"default {default}")
    parser.add_argument("--dry-run", action="store_true", help="list the files, write nothing")
    parser.add_argument("--force", action="store_true", help="write into a non-empty folder")
    parser.add_argument(
        "--broker", choices=BROKERS, default="redis", help="Tier 2 event bus (default redis)"
    )
    return parser


def iter_tree(root: Path) -> list[Path]:
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIPPED_NAMES)
        for filename in sorted(filenames):
            if filename.endswith((".pyc", ".pyo")):
                continue
            found.append(Path(dirpath) / filename)
    return found


def render_text(text: str, project: str, package: str) -> str:
    return text.replace(TEMPLATE_PACKAGE, package).replace(TEMPLATE_PROJECT, project)


def render_path(relative: str, project: str, package: str) -> str:
    return render_text(relative, project, package)


def read_lines(path: Path) -> list[str]:
    """Non-empty lines of a special file, with `#` comments dropped."""
    lines = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


def merge_dependencies(pyproject: str, extra: Sequence[str], source: str) -> str:
    match = DEPS_BLOCK_RE.search(pyproject)
    if match is None:
        raise ScaffoldError(
            f"{source}: no 'dependencies = [' block ending with ']' on its own line; "
            "keep the [project] dependencies list one requirement per line"
        )
    existing = [
        line.strip().rstrip(",").strip('"')
        for line in match.group("body").splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    names = {requirement_name(req) for req in existing}
    merged = list(existing)
    for req in extra:
        name = requirement_name(req)
        if name in names:
            continue
        names.add(name)
        merged.append(req)
    body = "".join(f'    "{req}",\n' for req in sorted(merged, key=str.lower))
    return pyproject[: match.start()] + f"dependencies = [\n{body}]\n" + pyproject[match.end() :]


def requirement_name(requirement: str) -> str:
    name = re.split(r"[\s\[<>=!~;@]", requirement, maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def render_conditionals(text: str, chosen: dict[str, str], source: str) -> str:
    """Keeps the `forge:if` blocks whose option matches `chosen`; drops every marker line."""
    kept: list[str] = []
    condition: tuple[int, bool] | None = None  # (line of the opening marker, keep its lines)
    for number, line in enumerate(text.splitlines(keepends=True), start=1):
        opening = CONDITION_RE.match(line)
        if opening:
            if condition is not None:
                raise ScaffoldError(
                    f"{source}:{number}: forge:if inside the block opened on line "
                    f"{condition[0]}: close it with <!-- forge:end --> first (no nesting)"
                )
            flag, values = opening["flag"], opening["values"].split("|")
            allowed = OPTIONS.get(flag, ((), ""))[0]
            unknown = [value for value in values if value not in allowed]
            if flag not in OPTIONS or unknown:
                problem = (
                    f"no option --{flag}"
                    if flag not in OPTIONS
                    else f"--{flag} has no value {', '.join(unknown)}"
                )
                known = ", ".join(f"{name}={'|'.join(v)}" for name, (v, _) in OPTIONS.items())
                raise ScaffoldError(
                    f"{source}:{number}: forge:if {flag}={opening['values']}: {problem}; "
                    f"known: {known}"
                )
            condition = (number, chosen.get(flag) in values)
        elif CONDITION_END_RE.match(line):
            if condition is None:
                raise ScaffoldError(f"{source}:{number}: forge:end without a forge:if before it")
            condition = None
        elif "forge:if" in line or "forge:end" in line:
            raise ScaffoldError(
                f"{source}:{number}: malformed marker {line.strip()!r}: write "
                "<!-- forge:if FLAG=VALUE --> or <!-- forge:end --> alone on its line"
            )
        elif condition is None or condition[1]:
            kept.append(line)
    if condition is not None:
        raise ScaffoldError(f"{source}:{condition[0]}: forge:if never closed by <!-- forge:end -->")
    return "".join(kept)


# Deployment overlays are whole files written for the default stack (PostgreSQL migrated by
# Alembic, a separate job worker); they cannot follow other options, so say what to trim.
DEPLOY_PARTS = {
    "compose": (
        "docker-compose.yml",
        "the `postgres` and `migrate` services",
        "the `worker` service",
    ),
    "k8s": ("k8s/", "migration-job.yaml and DATABASE_URL", "worker-deployment.yaml"),
    "cloudrun": ("cloudrun/", "migrate-job.yaml and DATABASE_URL", "the worker (see its comments)"),
}


def deployment_notes(deploy: str, db: str, queue: str | None) -> list[str]:
    if deploy not in DEPLOY_PARTS:
        return []
    where, database_parts, worker_parts = DEPLOY_PARTS[deploy]
    notes = []
    if db != "postgres":
        notes.append(
            f"{where} assumes PostgreSQL: with --db {db}, remove {database_parts}"
            f" and the dependencies on them before deploying"
        )
    if queue in (None, "none"):
        notes.append(f"{where} runs a job worker: without a queue, remove {worker_parts}")
    return notes


def build_plan(args: argparse.Namespace) -> Plan:
    base = LAYERS_DIR / "tier1-base"
    if not base.is_dir():
        raise ScaffoldError(f"{base}: template tree missing; reinstall the skill")
    project: str = args.name
    package = package_name(project)
    plan = Plan()
    sources: dict[str, Path] = {}

    selected = [(flag, getattr(args, flag)) for flag in OPTIONS]
    if args.agent == "none" and args.queue != "none":
        plan.notes.append(f"--queue {args.queue} ignored: --agent none has no agent jobs to queue")
        selected = [(flag, value) for flag, value in selected if flag != "queue"]

    plan.notes.extend(deployment_notes(args.deploy, args.db, dict(selected).get("queue")))

    for path in iter_tree(base):
        sources[path.relative_to(base).as_posix()] = path

    deps: list[tuple[str, Path]] = []
    env_blocks: list[tuple[str, Path]] = []
    removals: list[str] = []
    for flag, value in selected:
        overlay = LAYERS_DIR / f"{flag}-{value}"
        plan.overlays.append(f"{flag}-{value}")
        if not overlay.is_dir():
            # An option whose overlay is not written yet still renders; say so.
            plan.notes.append(f"layers/{flag}-{value}/ has no files yet: base files only")
            continue
        for path in iter_tree(overlay):
            relative = path.relative_to(overlay).as_posix()
            if relative in SPECIAL_FILES:
                if relative == "_deps.txt":
                    deps.extend((req, path) for req in read_lines(path))
                elif relative == "_env.txt":
                    env_blocks.append((f"{flag}-{value}", path))
                else:
                    removals.extend(read_lines(path))
                continue
            sources[relative] = path

    for removed in removals:
        prefix = removed.rstrip("/") + "/"
        for relative in list(sources):
            if relative == removed or (removed.endswith("/") and relative.startswith(prefix)):
                del sources[relative]

    # A dropped option (the queue of --agent none) reads as "none" in README conditions.
    chosen = {flag: "none" for flag in OPTIONS} | dict(selected)
    for relative, path in sorted(sources.items()):
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            plan.files[render_path(relative, project, package)] = raw
            continue
        if relative.endswith(".md"):
            text = render_conditionals(text, chosen, str(path))
        plan.files[render_path(relative, project, package)] = render_text(
            text, project, package
        ).encode("utf-8")

    if "pyproject.toml" not in plan.files:
        raise ScaffoldError(f"{base / 'pyproject.toml'}: missing from the template tree")
    pyproject = plan.files["pyproject.toml"].decode("utf-8")
    for req, path in deps:
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9_,.-]+\])?\s*[<>=!~;]", req):
            raise ScaffoldError(f"{path}: {req!r} is not a requirement with a version bound")
    pyproject = merge_dependencies(
        pyproject, [render_text(req, project, package) for req, _ in deps], str(base)
    )
    plan.files["pyproject.toml"] = pyproject.encode("utf-8")

    env_lines = plan.files.get(".env.example", b"").decode("utf-8").rstrip("\n").splitlines()
    for label, path in env_blocks:
        block = render_text(path.read_text(encoding="utf-8"), project, package).strip("\n")
        keys = set()
        for number, line in enumerate(block.splitlines(), start=1):
            stripped = line.strip()
            if stripped and not stripped.startswith("#"):
                if "=" not in stripped:
                    raise ScaffoldError(f"{path}:{number}: expected KEY=value or a # comment")
                keys.add(stripped.split("=", 1)[0].strip())
        # An option that sets a key already listed takes it over: one line per setting.
        env_lines = [line for line in env_lines if line.split("=", 1)[0].strip() not in keys]
        env_lines += ["", f"# --- {label} ---", *block.splitlines()]
    plan.files[".env.example"] = ("\n".join(env_lines) + "\n").encode("utf-8")

    check_rendered(plan, project, package)
    return plan


def build_tier2_plan(args: argparse.Namespace) -> Plan:
    """Tier 2: `layers/tier2-base/` plus `layers/broker-<broker>/`, the gateway template, and
    a Tier 1 project as `services/agent-service/`. A `_deps.txt` in any folder of an
    overlay is merged into the `pyproject.toml` of that folder."""
    base = LAYERS_DIR / "tier2-base"
    overlay = LAYERS_DIR / f"broker-{args.broker}"
    for folder in (base, overlay):
        if not folder.is_dir():
            raise ScaffoldError(f"{folder}: template tree missing; reinstall the skill")
    project: str = args.name
    package = package_name(project)
    plan = Plan(overlays=[f"broker-{args.broker}"])
    sources = {path.relative_to(base).as_posix(): path for path in iter_tree(base)}
    deps: dict[str, list[tuple[str, Path]]] = {}
    for path in iter_tree(overlay):
        relative = path.relative_to(overlay).as_posix()
        if path.name == "_deps.txt":
            folder = relative.rpartition("/")[0]
            deps.setdefault(folder, []).extend((req, path) for req in read_lines(path))
        else:
            sources[relative] = path
    for relative, template in TIER2_TEMPLATES.items():
        sources[relative] = SKILL_DIR / "assets" / "templates" / template

    for relative, path in sorted(sources.items()):
        text = render_text(path.read_text(encoding="utf-8"), project, package)
        plan.files[render_path(relative, project, package)] = text.encode("utf-8")
    for folder, requirements in deps.items():
        target = render_path(f"{folder}/pyproject.toml", project, package)
        if target not in plan.files:
            raise ScaffoldError(f"{requirements[0][1]}: no {folder}/pyproject.toml to merge into")
        merged = merge_dependencies(
            plan.files[target].decode("utf-8"),
            [render_text(req, project, package) for req, _ in requirements],
            target,
        )
        plan.files[target] = merged.encode("utf-8")
    check_rendered(plan, project, package)

    agent_args = argparse.Namespace(
        **{**vars(args), **TIER2_AGENT_SERVICE, "name": "agent-service"}
    )
    agent = build_plan(agent_args)
    for relative, content in agent.files.items():
        if relative != "docker-compose.yml":  # the system's compose file runs it
            plan.files[f"services/agent-service/{relative}"] = content
    plan.notes.append(
        "services/agent-service is a Tier 1 project with "
        + " ".join(f"--{flag} {value}" for flag, value in TIER2_AGENT_SERVICE.items())
        + f" --agent {args.agent}"
    )
    return plan


def build_tier3_plan(args: argparse.Namespace) -> Plan:
    """Tier 3: the Tier 2 system plus `tier3/` (order command and query services with the
    event log, relay, projector and rebuild; infrastructure/, docs/), added whole files."""
    tree = LAYERS_DIR / "tier3"
    if not tree.is_dir():
        raise ScaffoldError(f"{tree}: template tree missing; reinstall the skill")
    project: str = args.name
    package = package_name(project)
    plan = build_tier2_plan(args)
    for path in iter_tree(tree):
        relative = render_path(path.relative_to(tree).as_posix(), project, package)
        text = render_text(path.read_text(encoding="utf-8"), project, package)
        plan.files[relative] = text.encode("utf-8")
    check_rendered(plan, project, package)
    return plan


def check_rendered(plan: Plan, project: str, package: str) -> None:
    """No template token may survive unless the chosen name itself contains it."""
    tokens = [
        token
        for token, chosen in ((TEMPLATE_PACKAGE, package), (TEMPLATE_PROJECT, project))
        if token not in chosen
    ]
    for relative, content in plan.files.items():
        for token in tokens:
            if token in relative or token.encode() in content:
                raise ScaffoldError(f"{relative}: template token {token!r} left unrendered")


def ensure_writable_target(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ScaffoldError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ScaffoldError(
            f"{out}: folder is not empty; choose another --out or pass --force to write into it "
            "(files with the same names are replaced, others are kept)"
        )


def write_plan(plan: Plan, out: Path) -> None:
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for relative, content in plan.files.items():
            target = staging / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
            if relative.startswith("scripts/") or content.startswith(b"#!"):
                target.chmod(0o755)
        if not out.exists():
            staging.rename(out)
            return
        # --force into an existing folder: move each finished file over its old copy.
        for relative in plan.files:
            target = out / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / relative, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    out: Path = args.out if args.out is not None else Path.cwd() / args.name
    try:
        builders = {"1": build_plan, "2": build_tier2_plan, "3": build_tier3_plan}
        plan = builders[args.tier](args)
        if args.dry_run:
            print(f"would write {len(plan.files)} files to {out}:")
            for relative in sorted(plan.files):
                print(f"  {relative}")
        else:
            ensure_writable_target(out, args.force)
            write_plan(plan, out)
            print(f"wrote {len(plan.files)} files to {out}")
    except ScaffoldError as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 1
    for note in plan.notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"options: {' '.join(plan.overlays)}")
    if not args.dry_run:
        print(f"next: cd {out} && see README.md (install, migrate, test, run)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
