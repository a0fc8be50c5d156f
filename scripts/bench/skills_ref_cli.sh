#!/usr/bin/env bash
# The reference validator as CI runs it: one `agentskills validate` process per skill.
#   skills_ref_cli.sh AGENTSKILLS_BIN SKILLS_DIR
# Exit 1 when any skill fails, like the CLI; failures go to stderr in the CLI's own words.
set -uo pipefail
status=0
for skill in "$2"/*/; do
    [[ -f "$skill/SKILL.md" ]] || continue
    "$1" validate "${skill%/}" >/dev/null || status=1
done
exit "$status"
