"""`skillcheck lint --format github` prints workflow commands that GitHub's runner reads back
exactly: every finding becomes one `::error`/`::warning` command whose properties (file, line,
col, title) and message, once unescaped as the runner does, equal the finding as the JSON
format reports it.

The syntax is GitHub's documented one, `::error file={name},line={line},col={col},
title={title}::{message}` ("Workflow commands for GitHub Actions", docs.github.com). The
escaping is the runner's own: `ActionCommand.TryParseV2` in actions/runner splits the command
at the first `::` after the name, the properties at `,` and each at its first `=`, then
unescapes property values (%0D, %0A, %3A, %2C, then %25) and the message (%0D, %0A, then %25);
actions/toolkit's `escapeProperty`/`escapeData` are the matching escapes. `parse_command` below
is that parser, line for line.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .skills import build_release_binary

# actions/runner src/Runner.Common/ActionCommand.cs: the replacement order matters (%25 last).
PROPERTY_ESCAPES = (
    ("\r", "%0D"),
    ("\n", "%0A"),
    (":", "%3A"),
    (",", "%2C"),
    ("%", "%25"),
)
DATA_ESCAPES = (("\r", "%0D"), ("\n", "%0A"), ("%", "%25"))
# The documented annotation properties (error, warning and notice take the same ones).
ANNOTATION_PROPERTIES = {"file", "line", "endLine", "col", "endColumn", "title"}


@dataclass
class Command:
    name: str
    properties: dict[str, str] = field(default_factory=dict)
    data: str = ""


def _unescape(text: str, escapes: tuple[tuple[str, str], ...]) -> str:
    for token, replacement in escapes:
        text = text.replace(replacement, token)
    return text


def parse_command(line: str) -> Command | None:
    message = line.lstrip()
    if not message.startswith("::"):
        return None
    end = message.find("::", 2)
    if end < 0:
        return None
    info = message[2:end]
    name, space, props = info.partition(" ")
    command = Command(name)
    if space:
        for prop in props.strip().split(","):
            key, equals, value = prop.partition("=")
            if prop and equals and key and value:
                command.properties[key] = _unescape(value, PROPERTY_ESCAPES)
    command.data = _unescape(message[end + 2 :], DATA_ESCAPES)
    return command


def test_the_parser_reads_the_documented_examples() -> None:
    # The parser itself, on GitHub's documented example and on the toolkit's escaping.
    cmd = parse_command(
        "::error file=app.js,line=1,col=5,endColumn=7::Missing semicolon"
    )
    assert cmd == Command(
        "error",
        {"file": "app.js", "line": "1", "col": "5", "endColumn": "7"},
        "Missing semicolon",
    )
    cmd = parse_command("::warning title=a%3Ab%2Cc%25d%0Ae::x:y,z%25%0A1")
    assert cmd == Command("warning", {"title": "a:b,c%d\ne"}, "x:y,z%\n1")


# A file name with every character the properties escape, and "%2C" spelled out: printed
# without escaping `%`, the runner would read it back as ",".
ODD_NAME = "notes%2Cv1,draft:b 100%.md"


@pytest.fixture(scope="module")
def binary() -> Path:
    return build_release_binary()


@pytest.fixture(scope="module")
def odd_skill(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("annotations")
    skill = root / "demo-skill"
    (skill / "references").mkdir(parents=True)
    (skill / "SKILL.md").write_text(
        "---\nname: demo-skill\n"
        "description: Builds the weekly report. Use when asked for the weekly report.\n"
        "---\n\n# Weekly report\n\nRead [the guide](references/missing.md) first.\n"
    )
    # Reached by nothing: an orphan-file warning, with a help line (a newline to escape).
    (skill / "references" / ODD_NAME).write_text("# Notes\n")
    return root


def _lint(binary: Path, cwd: Path, fmt: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary, "lint", "--format", fmt, "demo-skill"],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )


def test_annotations_round_trip_through_the_runner_parser(
    binary: Path, odd_skill: Path
) -> None:
    github = _lint(binary, odd_skill, "github")
    assert github.returncode == 1, github.stderr
    lines = github.stdout.splitlines()
    commands = [parse_command(line) for line in lines]

    # Every line but the closing summary is a command; the summary is plain text.
    assert all(c is not None for c in commands[:-1]), github.stdout
    assert commands[-1] is None and re.fullmatch(
        r"1 skill, 2 files: 1 error, 1 warning in [0-9.]+s", lines[-1]
    ), lines[-1]

    findings = json.loads(_lint(binary, odd_skill, "json").stdout)["skills"][0][
        "diagnostics"
    ]
    assert len(findings) == 2
    annotations = [c for c in commands if c is not None]
    assert len(annotations) == len(findings)
    for cmd, finding in zip(annotations, findings, strict=True):
        assert cmd.name == finding["severity"]
        assert set(cmd.properties) <= ANNOTATION_PROPERTIES, cmd
        assert cmd.properties["file"] == finding["path"]
        assert cmd.properties["title"] == f"{finding['code']} {finding['name']}"
        if finding["line"]:
            assert cmd.properties["line"] == str(finding["line"])
            assert cmd.properties["col"] == str(finding["col"])
        else:
            # No position: no line/col property (a `line=0` would point at nothing).
            assert "line" not in cmd.properties and "col" not in cmd.properties
        expected = finding["message"]
        if finding["help"]:
            expected += f"\nhelp: {finding['help']}"
        assert cmd.data == expected

    by_code = {c.properties["title"].split()[0]: c for c in annotations}
    assert by_code["LNK001"].properties["line"] == "8"
    assert by_code["STR002"].properties["file"] == f"demo-skill/references/{ODD_NAME}"


def test_properties_escape_exactly_what_the_syntax_reserves(
    binary: Path, odd_skill: Path
) -> None:
    # Literally, not only after a round trip: a property holds no raw `,` or `:` (they would
    # split it), no raw `%` except as an escape, and a message no raw `%` except as an escape.
    github = _lint(binary, odd_skill, "github").stdout
    odd = next(line for line in github.splitlines() if "STR002" in line)
    props, _, data = odd[len("::warning ") :].partition("::")
    assert (
        "file=demo-skill/references/notes%252Cv1%2Cdraft%3Ab 100%25.md"
        in props.split(",")
    )
    for key_value in props.split(","):
        key, _, value = key_value.partition("=")
        assert key in ANNOTATION_PROPERTIES
        assert ":" not in value and re.fullmatch(
            r"(?:[^%]|%(?:25|0D|0A|3A|2C))*", value
        ), value
    assert "%0Ahelp: " in data and "\n" not in data
    assert re.fullmatch(r"(?:[^%]|%(?:25|0D|0A))*", data), data
