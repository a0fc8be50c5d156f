#!/usr/bin/env python3
"""Counts how many seeded defects of a corpus a linter's output reports, per defect kind.

    score.py MANIFEST TOOL OUTPUT_FILE [--json]

TOOL is `skillcheck` (its `--format json`), `agnix` (its `--format json`) or `skills-ref`
(the `agentskills validate` text on stderr, which the library runner imitates). A seeded
defect counts as found when the tool reports, in the same skill, a finding whose rule maps to
the defect's kind. Findings that map to no seeded defect of their skill are counted as
`other`: on this corpus they are false positives or rules the corpus does not seed.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path

# Rule codes (or message patterns) that report each seeded defect kind.
SKILLCHECK_RULES = {
    "LNK001": "broken-link",
    "LNK003": "broken-anchor",
    "LNK004": "broken-anchor",
    "FM008": "bad-name",
    "FM009": "bad-name",
    "FM010": "missing-description",
    "CB003": "unclosed-fence",
    "STR002": "orphan-file",
    "SEC001": "secret",
}
AGNIX_RULES = {
    "AS-003": "missing-description",
    "AS-004": "bad-name",
    "AS-017": "bad-name",
    "AS-023": "orphan-file",
    "XP-SK-003": "secret",
    "REF-001": "broken-link",
    "REF-002": "broken-link",
}
SKILLS_REF_PATTERNS = (
    (re.compile(r"Missing required field in frontmatter: description|'description'"),
     "missing-description"),
    (re.compile(r"Skill name|Directory name .* must match|'name'"), "bad-name"),
)
ANCHOR_WORDS = re.compile(r"anchor|fragment|heading", re.I)


def skill_of(path: str, skills: set[str]) -> str | None:
    for part in Path(path).parts:
        if part in skills:
            return part
    return None


def findings_skillcheck(text: str, skills: set[str]) -> list[tuple[str | None, str | None]]:
    data = json.loads(text)
    out = []
    for report in data["skills"]:
        skill = skill_of(report["root"], skills) or report["skill"]
        for d in report["diagnostics"]:
            out.append((skill, SKILLCHECK_RULES.get(d["code"])))
    return out


def findings_agnix(text: str, skills: set[str]) -> list[tuple[str | None, str | None]]:
    data = json.loads(text)
    out = []
    for d in data["diagnostics"]:
        kind = AGNIX_RULES.get(d["rule"])
        if kind == "broken-link" and "#" in d["message"] and ANCHOR_WORDS.search(d["message"]):
            kind = "broken-anchor"
        out.append((skill_of(d.get("file", ""), skills), kind))
    return out


def findings_skills_ref(text: str, skills: set[str]) -> list[tuple[str | None, str | None]]:
    out = []
    current = None
    for line in text.splitlines():
        m = re.match(r"Validation failed for (.*):$", line)
        if m:
            current = skill_of(m.group(1), skills)
            continue
        m = re.match(r"\s+- (.*)$", line)
        if m and current is not None:
            kind = next((k for pat, k in SKILLS_REF_PATTERNS if pat.search(m.group(1))), None)
            out.append((current, kind))
    return out


PARSERS = {
    "skillcheck": findings_skillcheck,
    "agnix": findings_agnix,
    "skills-ref": findings_skills_ref,
}


def score(manifest: dict, tool: str, text: str) -> dict:
    seeded = {(d["skill"], d["kind"]) for d in manifest["defects"]}
    skills = {d["skill"] for d in manifest["defects"]}
    # Clean skills are in the corpus too: accept any skill folder name the tool names.
    skills |= set(manifest.get("all_skills", []))
    reported = PARSERS[tool](text, skills)
    hits = {(s, k) for s, k in reported if (s, k) in seeded}
    other = sum(1 for s, k in reported if (s, k) not in seeded)
    per_kind = {}
    for kind in manifest["kinds"]:
        total = sum(1 for d in manifest["defects"] if d["kind"] == kind)
        found = sum(1 for s, k in hits if k == kind)
        per_kind[kind] = {"found": found, "seeded": total}
    return {
        "tool": tool,
        "found": len(hits),
        "seeded": len(seeded),
        "other_findings": other,
        "kinds": per_kind,
    }


def main() -> int:
    if len(sys.argv) < 4 or sys.argv[2] not in PARSERS:
        print(__doc__, file=sys.stderr)
        return 2
    manifest = json.loads(Path(sys.argv[1]).read_text())
    result = score(manifest, sys.argv[2], Path(sys.argv[3]).read_text(errors="replace"))
    if "--json" in sys.argv[4:]:
        print(json.dumps(result))
        return 0
    kinds = ", ".join(
        f"{k} {v['found']}/{v['seeded']}" for k, v in result["kinds"].items()
    )
    print(
        f"{result['tool']}: {result['found']}/{result['seeded']} seeded defects found "
        f"({kinds}); {result['other_findings']} other findings"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
