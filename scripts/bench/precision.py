#!/usr/bin/env python3
"""Error and warning precision of each linter on the real-skill corpus, from reviewed verdicts.

    precision.py VERDICTS.tsv SKILLS SKILLCHECK.json AGNIX.json SKILLS_REF.stderr [--json]

VERDICTS.tsv (crates/skillcheck/tests/corpus/verdicts.tsv) has one row per finding of each
tool under its default settings: tool, severity, path, line, rule, verdict, note; verdict is
`defect` (a real defect), `accepted` (a fair best-practice finding) or `rejected`. An error is
precise when it is a defect, a warning when it is a defect or accepted. agnix's `info` level
is counted apart, outside precision. A finding with no verdict row is `unreviewed` and counts
as imprecise, so a change in any tool's output shows up here until it is reviewed.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path


def load_verdicts(path: Path) -> dict[tuple[str, str, str, str], str]:
    verdicts = {}
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        tool, _severity, file, lineno, rule, verdict, *_ = line.split("\t")
        verdicts[(tool, file, lineno, rule)] = verdict
    return verdicts


def skillcheck_findings(text: str) -> list[tuple[str, str, str, str]]:
    data = json.loads(text)
    return [
        (d["severity"], d["path"], str(d["line"]), d["code"])
        for report in data["skills"]
        for d in report["diagnostics"]
    ]


def agnix_findings(text: str) -> list[tuple[str, str, str, str]]:
    data = json.loads(text)
    return [(d["level"], d["file"], str(d["line"]), d["rule"]) for d in data["diagnostics"]]


def skills_ref_findings(text: str) -> list[tuple[str, str, str, str]]:
    out, current = [], None
    for line in text.splitlines():
        m = re.match(r"Validation failed for (.*):$", line)
        if m:
            current = m.group(1).removeprefix("./")
            continue
        m = re.match(r"\s+- (.*)$", line)
        if m and current is not None:
            out.append(("error", current, "0", m.group(1)))
    return out


def score(tool, findings, verdicts, skills):
    row = {"tool": tool, "skills": skills, "errors": 0, "errors_defect": 0, "warnings": 0,
           "warnings_accepted": 0, "info": 0, "unreviewed": 0}
    for severity, file, line, rule in findings:
        if severity == "info":
            row["info"] += 1
            continue
        verdict = verdicts.get((tool, file, line, rule))
        if verdict is None:
            row["unreviewed"] += 1
        if severity == "error":
            row["errors"] += 1
            row["errors_defect"] += verdict == "defect"
        else:
            row["warnings"] += 1
            row["warnings_accepted"] += verdict in ("defect", "accepted")
    row["findings_per_skill"] = (row["errors"] + row["warnings"]) / skills
    return row


def pct(part, whole):
    return f"{100 * part / whole:.0f}% ({part}/{whole})" if whole else "n/a (0)"


def main() -> int:
    if len(sys.argv) < 6:
        print(__doc__, file=sys.stderr)
        return 2
    verdicts = load_verdicts(Path(sys.argv[1]))
    skills = int(sys.argv[2])
    read = lambda p: Path(p).read_text(errors="replace")
    rows = [
        score("skillcheck", skillcheck_findings(read(sys.argv[3])), verdicts, skills),
        score("agnix", agnix_findings(read(sys.argv[4])), verdicts, skills),
        score("skills-ref", skills_ref_findings(read(sys.argv[5])), verdicts, skills),
    ]
    if "--json" in sys.argv[6:]:
        print(json.dumps(rows))
        return 0
    print("| tool | errors | error precision (defects) | warnings | warning precision (defect or accepted) | findings/skill | info (not scored) | unreviewed |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['tool']} | {r['errors']} | {pct(r['errors_defect'], r['errors'])} | "
              f"{r['warnings']} | {pct(r['warnings_accepted'], r['warnings'])} | "
              f"{r['findings_per_skill']:.2f} | {r['info']} | {r['unreviewed']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
