#!/usr/bin/env python3
"""Validates every skill under a folder with the `skills_ref` library, in one process.

    skills_ref_lib.py SKILLS_DIR

Prints failures to stderr in the same shape as `agentskills validate`, so that one parser
scores both, and exits 1 when any skill fails.
"""

from __future__ import annotations

import sys
from pathlib import Path

from skills_ref import validate


def main() -> int:
    root = Path(sys.argv[1])
    failed = 0
    # At any depth, as skillcheck and agnix find them (plugins nest skills/<name>/).
    for skill_dir in sorted(p.parent for p in root.rglob("SKILL.md")):
        errors = validate(skill_dir)
        if errors:
            failed += 1
            print(f"Validation failed for {skill_dir}:", file=sys.stderr)
            for error in errors:
                print(f"  - {error}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
