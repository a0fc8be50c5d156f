#!/usr/bin/env python3
"""Generates a deterministic corpus of realistic Agent Skills with seeded defects.

    gen_corpus.py OUT_DIR --skills N [--seed S]

Writes OUT_DIR/skills/<skill-name>/... and OUT_DIR/manifest.json, which lists every seeded
defect as {"skill", "kind", "file"}. A skill is a SKILL.md of roughly 250-300 lines (a
frontmatter, a table of contents, a workflow, decisions, code blocks in several languages, an
output checklist whose items link to reference sections), four references of about 220 lines
each (contents list, headings, HTML anchors, cross links, code blocks), templates and a script.
Every tenth skill is clean; each other skill carries two defects of different kinds, so that
the whole corpus holds each kind about equally often.

Standard library only; the same arguments always give the same bytes, so timings of
different runs and different tools are comparable.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import string
import sys
from dataclasses import dataclass, field
from pathlib import Path

DEFECT_KINDS = (
    "broken-link",
    "broken-anchor",
    "bad-name",
    "missing-description",
    "unclosed-fence",
    "orphan-file",
    "secret",
)

TOPICS = (
    "billing", "search", "ingest", "reports", "auth", "payments", "catalog", "alerts",
    "exports", "scheduler", "webhooks", "inventory", "chat", "metrics", "uploads", "geo",
)
REFERENCE_NAMES = ("architecture", "api-design", "testing", "operations")
WORDS = (
    "request", "handler", "service", "client", "timeout", "retry", "budget", "schema",
    "token", "queue", "worker", "cache", "record", "batch", "stream", "event", "limit",
    "policy", "config", "deploy", "metric", "trace", "session", "payload", "index",
    "version", "contract", "fixture", "migration", "endpoint", "backoff", "window",
)
SECTION_TITLES = (
    "Request flow", "Error handling", "Retries and timeouts", "Configuration", "Data model",
    "Background jobs", "Observability", "Security checks", "Pagination", "Caching rules",
    "Rate limits", "Versioning", "Deployment notes", "Local development",
)


def slug(title: str) -> str:
    """GitHub's heading id for the plain ASCII titles used here."""
    keep = "".join(c for c in title.lower() if c.isalnum() or c in " -_")
    return keep.replace(" ", "-")


@dataclass
class Skill:
    index: int
    rng: random.Random
    name: str
    topic: str
    defects: list[str]
    files: dict[str, str] = field(default_factory=dict)
    # (reference file, heading title) pairs that exist, for checklist and workflow links.
    sections: list[tuple[str, str]] = field(default_factory=list)

    def sentence(self, n: int = 12) -> str:
        words = [self.rng.choice(WORDS) for _ in range(n)]
        words[0] = words[0].capitalize()
        return " ".join(words) + "."

    def paragraph(self, sentences: int = 3) -> str:
        return " ".join(self.sentence(self.rng.randint(8, 14)) for _ in range(sentences))


def code_block(skill: Skill, lang: str) -> list[str]:
    word = skill.rng.choice(WORDS)
    bodies = {
        "python": [
            f"async def {word}_{skill.topic}(client: Client, limit: int = 50) -> list[dict]:",
            f'    """Fetch one page of {skill.topic} {word}s."""',
            f'    response = await client.get("/{skill.topic}", params={{"limit": limit}})',
            "    response.raise_for_status()",
            '    return response.json()["items"]',
        ],
        "bash": [
            f"export {skill.topic.upper()}_URL=http://127.0.0.1:8000",
            f'curl -fsS "${skill.topic.upper()}_URL/{skill.topic}?limit=10" | jq .items',
        ],
        "json": [
            "{",
            f'  "name": "{skill.topic}-{word}",',
            f'  "limit": {skill.rng.randint(1, 500)},',
            '  "enabled": true',
            "}",
        ],
        "yaml": [
            f"{skill.topic}:",
            f"  {word}: {skill.rng.randint(1, 99)}",
            "  retries: 3",
            "  backoff_seconds: 0.5",
        ],
        "toml": [
            f"[{skill.topic}]",
            f'{word}_name = "{skill.rng.choice(WORDS)}"',
            f"limit = {skill.rng.randint(1, 500)}",
        ],
    }
    return [f"```{lang}", *bodies[lang], "```"]


def reference_file(skill: Skill, ref: str, others: list[str]) -> str:
    titles = skill.rng.sample(SECTION_TITLES, 7)
    for t in titles:
        skill.sections.append((f"references/{ref}.md", t))
    lines = [f"# {ref.replace('-', ' ').title()} for {skill.topic}", "", skill.paragraph(2), ""]
    lines += ["## Contents", ""]
    lines += [f"- [{t}](#{slug(t)})" for t in titles]
    lines.append("")
    for n, title in enumerate(titles):
        lines += [f"## {title}", "", skill.paragraph(3), ""]
        if n == 2:
            anchor = f"{skill.topic}-{ref}-note"
            lines += [f'<a id="{anchor}"></a>', "", skill.paragraph(1), ""]
            lines += [f"Back to [the note](#{anchor}) or [the top](#contents).", ""]
        for sub in range(2):
            lines += [f"### {title} step {sub + 1}", "", skill.paragraph(2), ""]
            lines += [f"- {skill.sentence(7)}" for _ in range(3)]
            lines.append("")
        lines += code_block(skill, skill.rng.choice(["python", "bash", "json", "yaml", "toml"]))
        lines.append("")
        other = skill.rng.choice(others)
        lines += [f"See also [{other}]({other}.md) and [the contents](#contents).", ""]
    return "\n".join(lines)


def random_token(rng: random.Random) -> str:
    """A live-looking GitHub token shape: mixed letters and digits, no placeholder words."""
    alphabet = string.ascii_letters + string.digits
    while True:
        body = "".join(rng.choice(alphabet) for _ in range(36))
        lower = body.lower()
        if any(c.isdigit() for c in body) and not any(
            w in lower for w in ("test", "fake", "your", "xxxx", "dummy", "sample", "example")
        ):
            return "ghp_" + body


def skill_md(skill: Skill) -> str:
    fm = ["---"]
    if "bad-name" in skill.defects:
        fm.append(f"name: {skill.topic.title()}_Skill_{skill.index}")
    else:
        fm.append(f"name: {skill.name}")
    if "missing-description" not in skill.defects:
        fm.append(
            f"description: Builds and reviews {skill.topic} services (request handling, "
            f"jobs, storage and tests). Use when the user asks to add, debug or review "
            f"{skill.topic} features."
        )
    fm += ["license: MIT", "metadata:", '  version: "1.4"', f"  topic: {skill.topic}", "---"]

    lines = [f"# {skill.topic.title()} service skill", "", skill.paragraph(3), ""]
    top = ["Workflow", "Decisions", "Patterns", "Templates", "Scripts", "Output checklist"]
    lines += ["## Contents", ""] + [f"- [{t}](#{slug(t)})" for t in top] + [""]

    lines += ["## Workflow", ""]
    for n in range(1, 9):
        ref, title = skill.rng.choice(skill.sections)
        lines.append(f"{n}. {skill.sentence(9)} Read [{title}]({ref}#{slug(title)}).")
    lines.append("")
    if "broken-link" in skill.defects:
        lines += ["For upgrades see [the migration guide](references/migration-guide.md).", ""]
    if "broken-anchor" in skill.defects:
        lines += [
            f"Retry details are in [retry policy](references/{REFERENCE_NAMES[0]}.md"
            "#retry-policy-details).",
            "",
        ]

    lines += ["## Decisions", "", "| Situation | Choice | Why |", "| --- | --- | --- |"]
    for _ in range(8):
        lines.append(
            f"| {skill.sentence(4)} | {skill.rng.choice(WORDS)} | {skill.sentence(6)} |"
        )
    lines.append("")

    lines += ["## Patterns", ""]
    for n in range(9):
        lines += [f"### Pattern {n + 1}: {skill.rng.choice(SECTION_TITLES)}", ""]
        lines += [skill.paragraph(2), ""]
        lines += [f"- {skill.sentence(6)}" for _ in range(3)]
        lines.append("")
        lines += code_block(skill, ("python", "bash", "json", "yaml", "toml")[n % 5])
        lines.append("")

    lines += ["## Templates", ""]
    lines += [
        "- [`assets/templates/app.py`](assets/templates/app.py): the application factory.",
        "- [`assets/templates/config.yaml`](assets/templates/config.yaml): defaults.",
        "- [`assets/templates/settings.toml`](assets/templates/settings.toml): deploy settings.",
        "",
        "## Scripts",
        "",
        "Run `scripts/check.py` before you hand the project over.",
        "",
    ]

    lines += ["## Output checklist", ""]
    for ref, title in skill.rng.sample(skill.sections, 20):
        lines.append(f"- [ ] {skill.sentence(6)} -> [{title}]({ref}#{slug(title)})")
    lines.append("")
    for n in range(3):
        lines += [f"### Notes {n + 1}", "", skill.paragraph(3), ""]
    return "\n".join(fm + lines)


def build_skill(index: int, seed: int) -> Skill:
    rng = random.Random(seed * 1_000_003 + index)
    topic = TOPICS[index % len(TOPICS)]
    name = f"{topic}-skill-{index:04d}"
    defects: list[str] = []
    if index % 10 != 9:
        defects = [
            DEFECT_KINDS[index % len(DEFECT_KINDS)],
            DEFECT_KINDS[(index + 3) % len(DEFECT_KINDS)],
        ]
    skill = Skill(index=index, rng=rng, name=name, topic=topic, defects=defects)

    for ref in REFERENCE_NAMES:
        others = [r for r in REFERENCE_NAMES if r != ref]
        skill.files[f"references/{ref}.md"] = reference_file(skill, ref, others)
    skill.files["SKILL.md"] = skill_md(skill)
    skill.files["assets/templates/app.py"] = "\n".join(
        [
            '"""Application factory for the service."""',
            "",
            "from fastapi import FastAPI",
            "",
            "",
            "def create_app() -> FastAPI:",
            f'    app = FastAPI(title="{topic}")',
            "",
            '    @app.get("/health")',
            "    async def health() -> dict[str, str]:",
            '        return {"status": "ok"}',
            "",
            "    return app",
            "",
        ]
    )
    skill.files["assets/templates/config.yaml"] = (
        f"service: {topic}\nport: 8000\nworkers: 2\nlog_level: info\n"
    )
    settings = f'[deploy]\nregion = "eu-west-1"\nreplicas = 2\nservice = "{topic}"\n'
    if "secret" in defects:
        settings += f'github_token = "{random_token(rng)}"\n'
    skill.files["assets/templates/settings.toml"] = settings
    skill.files["scripts/check.py"] = (
        '#!/usr/bin/env python3\n"""Checks the generated project."""\n\nimport sys\n\n'
        'if __name__ == "__main__":\n    sys.exit(0)\n'
    )
    if "unclosed-fence" in defects:
        ref = f"references/{REFERENCE_NAMES[1]}.md"
        skill.files[ref] += "\n## Appendix\n\n```python\nprint('this fence never closes')\n"
    if "orphan-file" in defects:
        skill.files["references/legacy-notes.md"] = (
            "# Legacy notes\n\n" + skill.paragraph(2) + "\n"
        )
    return skill


def defect_file(kind: str) -> str:
    return {
        "broken-link": "SKILL.md",
        "broken-anchor": "SKILL.md",
        "bad-name": "SKILL.md",
        "missing-description": "SKILL.md",
        "unclosed-fence": f"references/{REFERENCE_NAMES[1]}.md",
        "orphan-file": "references/legacy-notes.md",
        "secret": "assets/templates/settings.toml",
    }[kind]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--skills", type=int, required=True)
    parser.add_argument("--seed", type=int, default=8)
    args = parser.parse_args()
    if args.skills < 1:
        parser.error("--skills must be at least 1")

    # Write into a sibling folder and rename at the end: never a half-written corpus.
    out: Path = args.out
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    manifest = []
    names = []
    for index in range(args.skills):
        skill = build_skill(index, args.seed)
        root = tmp / "skills" / skill.name
        names.append(skill.name)
        for rel, text in skill.files.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text + ("" if text.endswith("\n") else "\n"), encoding="utf-8")
            if rel.startswith("scripts/"):
                path.chmod(0o755)
        for kind in skill.defects:
            manifest.append({"skill": skill.name, "kind": kind, "file": defect_file(kind)})
    (tmp / "manifest.json").write_text(
        json.dumps(
            {
                "skills": args.skills,
                "seed": args.seed,
                "kinds": DEFECT_KINDS,
                "all_skills": names,
                "defects": manifest,
            },
            indent=1,
        )
        + "\n"
    )
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
