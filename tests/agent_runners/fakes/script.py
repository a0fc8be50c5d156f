"""The one conversation every fake provider plays, whatever its wire format.

Turn 1: the model asks for the runner's `count_words` tool. Turn 2 (the request carries the
tool's result): the model streams a final answer quoting that result, so a test can tell
the agent really executed the tool and sent its output back. A request without tools (an
SDK's side request, such as a title) gets a one-word answer. Each answer reports its own
token figures, and the script records them so tests compare against what was reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

TOOL_NAME = "count_words"
TOOL_ARGUMENTS = {"text": "agents stream tokens"}
# count_words("agents stream tokens") in every runner's demo tool.
TOOL_OUTPUT = "3"
FINAL_TEXT_PARTS = ["The text ", "has ", TOOL_OUTPUT, " words."]
FINAL_TEXT = "".join(FINAL_TEXT_PARTS)


@dataclass(frozen=True)
class TokenUsage:
    """As runners report them: `input_tokens` leaves out cache reads and writes (as the
    Anthropic API does), so the four figures add up to all tokens without double counting."""

    input_tokens: int
    output_tokens: int
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0


@dataclass(frozen=True)
class Turn:
    kind: Literal["tool_call", "final", "side"]
    model: str
    usage: TokenUsage
    text_parts: list[str] = field(default_factory=list)
    call_id: str = ""
    # The tool's name as the SDK declared it (some prefix it, e.g. `mcp__forge__count_words`).
    tool_name: str = ""


@dataclass
class Script:
    """Decides each answer from the request alone, so retries and side requests are safe."""

    # Where streamed answers stop and hang until the client hangs up: right away (to test
    # timeouts) or after the final answer's first piece of text (to cancel mid-stream).
    stall: Literal["at_start", "after_first_text"] | None = None
    played: list[Turn] = field(default_factory=list)
    calls: int = 0

    def next_turn(
        self,
        model: str,
        *,
        tool_names: list[str],
        tool_output: str | None,
        cache_writes: bool = True,
    ) -> Turn:
        """`cache_writes=False` for wire formats without a cache-write figure."""
        self.calls += 1
        n = self.calls
        write = 60 if cache_writes else 0
        if tool_output is not None:
            # Echo what the agent sent back, so a wrong or missing tool result shows up.
            parts = [p if p != TOOL_OUTPUT else tool_output for p in FINAL_TEXT_PARTS]
            turn = Turn("final", model, TokenUsage(130 + n, 17, 40, 0), parts)
        elif declared := [name for name in tool_names if name.endswith(TOOL_NAME)]:
            usage = TokenUsage(120 + n, 23, 0, write)
            turn = Turn("tool_call", model, usage, call_id=f"call_{n}", tool_name=declared[0])
        else:
            turn = Turn("side", model, TokenUsage(9, 2), ["ok"])
        self.played.append(turn)
        return turn

    def stall_after(self, turn: Turn, first_text_event: int) -> int | None:
        """How many events of `turn`'s stream to send before stalling (None: send all)."""
        if self.stall == "at_start":
            return 0
        if self.stall == "after_first_text" and turn.kind == "final":
            return first_text_event + 1
        return None

    def reported(self, *, include_side: bool = True) -> dict[str, TokenUsage]:
        """Token figures summed per model, as a runner should report them."""
        totals: dict[str, TokenUsage] = {}
        for turn in self.played:
            if turn.kind == "side" and not include_side:
                continue
            t, u = totals.get(turn.model, TokenUsage(0, 0)), turn.usage
            totals[turn.model] = TokenUsage(
                t.input_tokens + u.input_tokens,
                t.output_tokens + u.output_tokens,
                t.cache_read_tokens + u.cache_read_tokens,
                t.cache_write_tokens + u.cache_write_tokens,
            )
        return totals
