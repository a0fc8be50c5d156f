"""Follows a generated README literally: its shell blocks, in order, as a person would paste
them, with a transcript of everything.

Which fenced blocks run (the convention generated READMEs follow):

- ```` ```bash ```` or ```` ```sh ````: each command runs, in order, in one shell session (so
  `source`, `export` and `cd` carry over to the next command, as in a terminal). Each must
  exit 0 within its time limit.
- ```` ```bash title="another terminal" ````: a long-running process a person starts in a new
  terminal (the API, the worker). Its lines run in a fresh shell of their own (nothing
  exported in the first one carries over), in the background; it must still be running
  when the remaining commands are done, and gets Ctrl-C (SIGINT) at the end.
- ```` ```bash title="example" ```` (any other title, or any other language): shown to the
  reader, never run: alternatives (pip instead of uv), or commands with placeholders.

A command is one line (or several joined by a trailing backslash); blank lines and comment
lines are skipped, and the text is handed to bash unchanged.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

FENCE_RE = re.compile(r"^(?P<fence>```+)(?P<info>[^`]*)$")
TITLE_RE = re.compile(r'title="(?P<title>[^"]*)"')
RUN_LANGUAGES = {"bash", "sh", "shell"}
BACKGROUND_TITLE = "another terminal"
RC_MARKER = "__README_LITERAL_RC__"
# The driver: reads NUL-terminated commands from the pipe `fd` and evals each in this one
# shell, so state carries over; commands get no stdin (a prompt would hang until the limit).
DRIVER = """exec 0</dev/null 2>&1
while IFS= read -r -d '' -u {fd} __readme_command; do
    eval "$__readme_command"
    printf '\\n{marker} %s\\n' "$?"
done
"""


@dataclass
class Block:
    line: int  # 1-based line of the opening fence
    language: str
    title: str | None
    text: str

    @property
    def kind(self) -> str:
        if self.language not in RUN_LANGUAGES:
            return "shown"
        if self.title is None:
            return "run"
        return "background" if self.title == BACKGROUND_TITLE else "shown"

    def commands(self) -> list[str]:
        commands: list[str] = []
        pending = ""
        for raw in self.text.splitlines():
            line = pending + raw
            if line.endswith("\\"):
                pending = line + "\n"
                continue
            pending = ""
            if line.strip() and not line.lstrip().startswith("#"):
                commands.append(line)
        if pending:
            commands.append(pending.rstrip("\\\n"))
        return commands


def fenced_blocks(markdown: str) -> list[Block]:
    blocks: list[Block] = []
    lines = markdown.splitlines()
    index = 0
    while index < len(lines):
        opening = FENCE_RE.match(lines[index])
        if not opening:
            index += 1
            continue
        info = opening["info"].strip()
        language = info.split(maxsplit=1)[0] if info else ""
        title = TITLE_RE.search(info)
        body: list[str] = []
        end = index + 1
        while end < len(lines) and not lines[end].startswith(opening["fence"]):
            body.append(lines[end])
            end += 1
        blocks.append(
            Block(
                index + 1, language, title["title"] if title else None, "\n".join(body)
            )
        )
        index = end + 1
    return blocks


class ReadmeStepFailed(AssertionError):
    """A README command failed, timed out or left a background terminal dead (not
    forge_testing's CommandFailed: this one carries the README walk's transcript)."""


@dataclass
class Background:
    block: Block
    process: subprocess.Popen[bytes]
    log: Path
    exit_code: int | None = None

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@dataclass
class ReadmeRun:
    """One walk through a README in `cwd`; `transcript` holds every command and its output."""

    cwd: Path
    env: Mapping[str, str]
    log_dir: Path
    time_limit: Callable[[str], float]
    transcript: list[str] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)
    backgrounds: list[Background] = field(default_factory=list)
    _write_end: int = field(default=-1, init=False)

    def run(self, blocks: list[Block]) -> None:
        read_end, self._write_end = os.pipe()
        shell = subprocess.Popen(
            [
                "bash",
                "--noprofile",
                "--norc",
                "-c",
                DRIVER.format(fd=read_end, marker=RC_MARKER),
            ],
            cwd=self.cwd,
            env=dict(self.env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            pass_fds=(read_end,),
            start_new_session=True,
        )
        os.close(read_end)
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, args=(shell, lines), daemon=True).start()
        try:
            for block in blocks:
                if block.kind == "run":
                    for command in block.commands():
                        self._one(shell, lines, block, command)
                elif block.kind == "background":
                    self._start_background(block)
                else:
                    self.transcript.append(
                        f"# README line {block.line}: shown, not run"
                    )
            for background in self.backgrounds:
                if background.process.poll() is not None:
                    raise ReadmeStepFailed(
                        f"the block of README line {background.block.line} (another terminal) "
                        f"exited with {background.process.returncode} before the end"
                    )
        finally:
            os.close(self._write_end)
            self._stop(shell)
            self.stop_backgrounds()

    @staticmethod
    def _pump(shell: subprocess.Popen[bytes], lines: queue.Queue[str | None]) -> None:
        assert shell.stdout is not None
        for raw in shell.stdout:
            lines.put(raw.decode(errors="replace"))
        lines.put(None)

    def _one(
        self,
        shell: subprocess.Popen[bytes],
        lines: queue.Queue[str | None],
        block: Block,
        command: str,
    ) -> None:
        limit = self.time_limit(command)
        self.transcript.append(f"$ {command}")
        os.write(self._write_end, command.encode() + b"\0")
        started = time.monotonic()
        output: list[str] = []
        code: int | None = None
        while code is None:
            remaining = limit - (time.monotonic() - started)
            try:
                line = lines.get(timeout=max(remaining, 0.01))
            except queue.Empty:
                self._record(output, f"[timed out after {limit:.0f}s]")
                raise ReadmeStepFailed(
                    f"README line {block.line}: `{command}` did not finish within {limit:.0f}s"
                ) from None
            if line is None:
                self._record(output, "[the shell exited]")
                raise ReadmeStepFailed(
                    f"README line {block.line}: the shell exited on `{command}`"
                )
            if line.startswith(RC_MARKER):
                code = int(line.split()[1])
            else:
                output.append(line)
        took = time.monotonic() - started
        # The driver prints a newline before its marker, in case output lacked one.
        if output and output[-1] == "\n":
            output.pop()
        self._record(output, f"[exit {code}, {took:.1f}s]")
        self.outputs[command] = "".join(output)
        if code != 0:
            raise ReadmeStepFailed(
                f"README line {block.line}: `{command}` exited with {code}"
            )

    def _record(self, output: list[str], status: str) -> None:
        text = "".join(output).rstrip("\n")
        if text:
            self.transcript.append(text)
        self.transcript.append(status)

    def _start_background(self, block: Block) -> None:
        number = len(self.backgrounds) + 1
        log = self.log_dir / f"terminal-{number + 1}.log"
        self.transcript.append(
            f"# README line {block.line}: in another terminal (terminal {number + 1}, "
            f"log {log}):"
        )
        self.transcript.extend(f"$ {command}" for command in block.commands())
        with log.open("wb") as out:
            process = subprocess.Popen(
                ["bash", "--noprofile", "--norc", "-e", "-c", block.text],
                cwd=self.cwd,
                env=dict(self.env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.backgrounds.append(Background(block, process, log))

    def stop_backgrounds(self) -> None:
        for background in self.backgrounds:
            if background.exit_code is not None:
                continue
            process = background.process
            if process.poll() is None:
                # Ctrl-C in that terminal: the whole foreground group gets SIGINT.
                os.killpg(process.pid, signal.SIGINT)
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(10)
            background.exit_code = process.returncode
            self.transcript.append(
                f"# terminal {self.backgrounds.index(background) + 2} (README line "
                f"{background.block.line}) after Ctrl-C: exit {process.returncode}; its output:"
            )
            self.transcript.append(background.output().rstrip("\n"))

    @staticmethod
    def _stop(shell: subprocess.Popen[bytes]) -> None:
        if shell.poll() is None:
            try:
                shell.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(shell.pid, signal.SIGKILL)
                shell.wait(10)

    def text(self) -> str:
        return "\n".join(self.transcript) + "\n"
