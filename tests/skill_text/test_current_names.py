"""Names the skill tells readers to use must be the current ones: the OpenTelemetry GenAI
attributes of the current semantic conventions (not those they replaced), and the SSE
keep-alive interval patched where FastAPI reads it (`fastapi.routing`, which imports the
value from `fastapi.sse` at import time: patching `fastapi.sse` changes nothing)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import fastapi.routing

SKILL = Path(__file__).resolve().parents[2] / "skill" / "fastapi-forge"
# Replaced attribute -> its current name (semantic conventions 1.37 onwards).
REPLACED = {
    r"gen_ai\.system(?![\w.])": "gen_ai.provider.name",
    r"gen_ai\.usage\.prompt_tokens": "gen_ai.usage.input_tokens",
    r"gen_ai\.usage\.completion_tokens": "gen_ai.usage.output_tokens",
    r"gen_ai\.prompt(?![\w.])": "gen_ai.input.messages",
    r"gen_ai\.completion(?![\w.])": "gen_ai.output.messages",
}
SSE_PING = "fastapi.sse._PING_INTERVAL"
PING_PATCH = re.compile(r"""setattr\(\s*([\w.]+)\s*,\s*["']_PING_INTERVAL["']""")


def skill_lines() -> list[tuple[str, str]]:
    return [
        (f"{path.relative_to(SKILL)}:{number}", line)
        for path in sorted(SKILL.rglob("*"))
        if path.is_file() and path.suffix in {".md", ".py", ".toml", ".yml", ".yaml"}
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
    ]


def test_genai_attributes_are_the_current_ones() -> None:
    wrong = [
        f"{where}: {re.search(old, line)[0]} is now {new}"  # type: ignore[index]
        for where, line in skill_lines()
        for old, new in REPLACED.items()
        if re.search(old, line)
    ]
    assert not wrong, "\n".join(wrong)


def test_the_sse_ping_interval_is_patched_where_fastapi_reads_it() -> None:
    assert "fail_after(_PING_INTERVAL)" in inspect.getsource(fastapi.routing)
    patched = [
        (where, match[1]) for where, line in skill_lines() if (match := PING_PATCH.search(line))
    ]
    assert patched, "the keep-alive test and its reference patch the interval"
    wrong = [f"{where}: {module}" for where, module in patched if module != "fastapi.routing"]
    wrong += [f"{where}: {line.strip()}" for where, line in skill_lines() if SSE_PING in line]
    assert not wrong, "patch fastapi.routing._PING_INTERVAL:\n" + "\n".join(wrong)
