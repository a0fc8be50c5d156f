#!/usr/bin/env bash
# The reference validator as CI runs it: one `agentskills validate` process per skill.
#   skills_ref_cli.sh AGENTSKILLS_BIN SKILLS_DIR
# Exit 1 when any skill fails, like the CLI; failures go to stderr in the CLI's own words.
set -uo pipefail
status=0
# Skills at any depth, as skillcheck and agnix find them (plugins nest skills/<name>/).
while IFS= read -r skill_md; do
    "$1" validate "${skill_md%/SKILL.md}" >/dev/null || status=1
done < <(find "$2" -name SKILL.md | sort)
exit "$status"
