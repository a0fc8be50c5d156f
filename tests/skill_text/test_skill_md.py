"""SKILL.md keeps its contract: frontmatter, size, the full output checklist, live links."""

from __future__ import annotations

import re
import tomllib
from urllib.parse import unquote

import yaml

from .markdown_blocks import SKILL, anchors, links, markdown_files, prose_lines

SKILL_MD = SKILL / "SKILL.md"
BODY_LIMIT = 500

# Sections 12 and 13 of the spec: what every generated project must deliver (49 items).
SPEC_CHECKLIST = [
    "FastAPI app with lifespan context manager",
    "Pydantic Settings for all configuration",
    "Typed Pydantic schemas for all request/response models",
    "Async database session management",
    "Authentication middleware (JWT or API key)",
    "Rate limiting middleware",
    "Health check endpoints (/health, /health/ready)",
    "Structured logging (structlog)",
    "Error handling with structured responses",
    "POST /agents/run — synchronous execution",
    "POST /agents/run/async — background job",
    "GET /agents/run/stream — SSE streaming",
    "WebSocket /agents/ws — bidirectional",
    "GET /agents/jobs/{id} — job status",
    "DELETE /agents/jobs/{id} — cancel job",
    "Agent timeout handling",
    "Token usage tracking",
    "Service client with circuit breaker",
    "Async inter-service communication",
    "Shared schema package",
    "Docker Compose for full system",
    "Service-specific health checks",
    "Tier appropriate for scale requirements",
    "App factory pattern (create_app)",
    "Lifespan context manager for startup/shutdown",
    "Dependency injection for services and DB",
    "All routes use Pydantic models for input/output",
    "All DB operations are async",
    "No hardcoded secrets",
    "Structured error responses (never raw exceptions)",
    "Type hints on all functions",
    "Auth middleware on all non-public routes",
    "Rate limiting configured",
    "CORS properly restricted",
    "Input validation via Pydantic",
    "Secrets via environment variables",
    "Structured logging (structlog/JSON)",
    "Prometheus metrics exported",
    "Health check endpoints",
    "Request tracing (OpenTelemetry)",
    "Dockerfile with multi-stage build",
    "docker-compose.yml for local dev",
    ".env.example with all variables",
    "pyproject.toml with correct dependencies",
    "K8s manifests if enterprise tier",
    "Async test client configured",
    "Tests for all endpoints",
    "Auth test coverage (valid/invalid/missing)",
    "Rate limit test",
]

_TASK = re.compile(r"^\s*[-*+]\s+\[[ xX]\]\s+(?P<text>.*)$")


def normalize(text: str) -> str:
    """Matching rules of checklist-coverage.md: no formatting, case or extra spaces."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = text.replace("`", "").replace("**", "").replace("*", "")
    return " ".join(text.lower().split())


def _split_frontmatter() -> tuple[dict[str, object], list[str]]:
    lines = SKILL_MD.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "---", "SKILL.md must start with YAML frontmatter"
    end = lines.index("---", 1)
    return yaml.safe_load("\n".join(lines[1:end])), lines[end + 1 :]


def _tasks() -> list[tuple[int, str]]:
    return [(n, m["text"]) for n, line in prose_lines(SKILL_MD) if (m := _TASK.match(line))]


def test_frontmatter() -> None:
    meta, _ = _split_frontmatter()
    assert meta["name"] == "fastapi-forge"
    description = meta["description"]
    assert isinstance(description, str)
    assert 200 < len(description) < 1024, len(description)
    assert "<" not in description and ">" not in description
    assert "use" in description.lower(), "the description must say when to use the skill"


def test_body_under_limit() -> None:
    _, body = _split_frontmatter()
    assert len(body) < BODY_LIMIT, f"SKILL.md body has {len(body)} lines"


def test_every_spec_item_is_a_linked_task_in_skill_md() -> None:
    tasks = {normalize(text): (n, text) for n, text in _tasks()}
    missing = []
    unlinked = []
    for item in SPEC_CHECKLIST:
        matches = [key for key in tasks if normalize(item) in key]
        if not matches:
            missing.append(item)
        elif not any("](" in tasks[key][1] for key in matches):
            unlinked.append(item)
    assert not missing, f"checklist items missing from SKILL.md: {missing}"
    assert not unlinked, f"checklist items without a link: {unlinked}"


def test_skillcheck_toml_requires_every_item() -> None:
    config = tomllib.loads((SKILL / "skillcheck.toml").read_text(encoding="utf-8"))
    required = config["checklist"]["require"]
    assert len(required) == len(SPEC_CHECKLIST) == len(set(required))
    tasks = [normalize(text) for _, text in _tasks()]
    dangling = [entry for entry in required if not any(normalize(entry) in t for t in tasks)]
    assert not dangling, f"required entries matching no task: {dangling}"
    uncovered = [
        item
        for item in SPEC_CHECKLIST
        if not any(normalize(entry) in normalize(item) for entry in required)
    ]
    assert not uncovered, f"spec items no required entry pins down: {uncovered}"


def test_links_resolve() -> None:
    broken = []
    for path in markdown_files():
        for line, target in links(path):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...
                continue
            file_part, _, fragment = target.partition("#")
            resolved = (path.parent / unquote(file_part)).resolve() if file_part else path
            where = f"{path.relative_to(SKILL)}:{line}: {target}"
            if not resolved.is_relative_to(SKILL.resolve()):
                broken.append(f"{where} leaves the skill")
            elif not resolved.exists():
                broken.append(f"{where} does not exist")
            elif fragment and resolved.suffix == ".md" and fragment != "top":
                if unquote(fragment) not in anchors(resolved):
                    broken.append(f"{where} has no such heading")
    assert not broken, "\n".join(broken)


def test_long_references_start_with_contents() -> None:
    for path in sorted((SKILL / "references").glob("*.md")):
        lines = path.read_text(encoding="utf-8").splitlines()
        if len(lines) <= 100:
            continue
        head = "\n".join(lines[:25]).lower()
        assert "contents" in head and "](#" in head, f"{path.name}: no table of contents on top"
