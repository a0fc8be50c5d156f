"""The contract, black box, over real HTTP, SSE and WebSocket against 2 uvicorn workers:
auth, tickets, run/stream/ws, job lifecycle and cancel codes, the error envelope, the rate
limit across workers and the cap on concurrent runs. Each test runs against every target
(conftest.py); each caller is a fresh subject, so tests never share a rate-limit budget."""

from __future__ import annotations

import concurrent.futures
import json
import time
import uuid
from typing import Any

import httpx
import pytest
from forge_testing.jobs import wait_for_job
from httpx_sse import connect_sse
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

from .conftest import (
    OTHER_MODEL,
    RATE_LIMIT,
    RATE_LIMIT_WINDOW,
    SECRET,
    TOKENS,
    Target,
)

pytestmark = pytest.mark.e2e

RUN = {"prompt": "hello contract"}
TERMINAL = {"completed", "failed", "cancelled"}
LONG_PROMPT = " ".join(f"w{i}" for i in range(300))  # ~6 s of fake agent output
# The last event of a run, over SSE (as `data:`) and WebSocket alike.
DONE = {"type": "done", "text": "", "data": {}, "usage": None}
TIMEOUT = {
    "type": "error",
    "text": "the agent did not finish in time",
    "data": {},
    "usage": None,
}


def assert_envelope(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"]
    assert error["request_id"] == response.headers["x-request-id"]
    return error


# --- auth -------------------------------------------------------------------------------------


# Tokens are minted when the test runs, not at collection: a token minted then expires while
# the suites before this one run, and every case would become `token_expired`.
@pytest.mark.parametrize(
    ("defect", "code"),
    [
        (None, "missing_credentials"),
        ({"exp": -3600}, "token_expired"),
        ({"alg": "none"}, "invalid_token"),
        ({"secret": SECRET[::-1]}, "invalid_token"),
        ({"aud": "someone-else"}, "invalid_token"),
    ],
    ids=["none", "expired", "alg-none", "forged", "audience"],
)
def test_bad_credentials_are_401(
    target: Target, defect: dict[str, Any] | None, code: str
) -> None:
    token = None
    if defect is not None:
        claims = dict(defect)
        if "exp" in claims:
            claims["exp"] += int(time.time())
        token = TOKENS.token("alice", **claims)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with target.client() as client:
        response = client.post("/agents/run", json=RUN, headers=headers)
    assert_envelope(response, 401, code)
    if token is None:
        assert response.headers["www-authenticate"].lower().startswith("bearer")


def test_valid_token_runs_the_agent(target: Target) -> None:
    with target.client(headers=target.auth()) as client:
        response = client.post("/agents/run", json=RUN)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["output"] == "You said: hello contract"
    assert body["usage"][0]["input_tokens"] == 2
    assert body["usage"][0]["output_tokens"] == 4
    assert body["tool_calls"][0]["name"] == "count_words"
    assert body["duration_seconds"] >= 0


# --- errors -----------------------------------------------------------------------------------


def test_validation_error_envelope(target: Target) -> None:
    with target.client(
        headers={**target.auth(), "X-Request-ID": "contract-req-1"}
    ) as client:
        empty = client.post("/agents/run", json={"prompt": ""})
        extra = client.post("/agents/run", json={"prompt": "hi", "temperature": 2})
        bad_id = client.get("/agents/jobs/not-a-uuid")
    error = assert_envelope(empty, 422, "validation_error")
    assert error["request_id"] == "contract-req-1"
    assert error["details"][0]["loc"] == ["body", "prompt"]
    assert set(error["details"][0]) == {"loc", "msg", "type"}
    assert "temperature" in json.dumps(assert_envelope(extra, 422, "validation_error"))
    assert_envelope(bad_id, 422, "validation_error")


# --- SSE and WebSocket ------------------------------------------------------------------------


def read_stream(
    client: httpx.Client, **params: str
) -> list[tuple[str, dict[str, Any], str]]:
    with connect_sse(client, "GET", "/agents/run/stream", params=params) as source:
        assert source.response.status_code == 200, source.response.read()
        assert source.response.headers["content-type"].startswith("text/event-stream")
        return [(e.event, json.loads(e.data), e.id) for e in source.iter_sse()]


def test_sse_stream(target: Target) -> None:
    with target.client(headers=target.auth()) as client:
        events = read_stream(client, prompt="stream me now")
    kinds = [kind for kind, _, _ in events]
    assert kinds[:2] == ["tool_call", "tool_result"], kinds
    assert kinds[-2:] == ["usage", "done"], kinds
    text = "".join(data["text"] for kind, data, _ in events if kind == "text")
    assert text == "You said: stream me now"
    assert all(data["type"] == kind for kind, data, _ in events)
    ids = [int(event_id) for _, _, event_id in events if event_id]
    assert ids == sorted(set(ids))


def receive(ws: ClientConnection) -> dict[str, Any]:
    while True:
        message: dict[str, Any] = json.loads(ws.recv(timeout=15))
        if message["type"] != "ping":
            return message


def run_over(ws: ClientConnection, prompt: str) -> list[dict[str, Any]]:
    ws.send(json.dumps({"type": "run", "prompt": prompt}))
    messages = [receive(ws)]
    while messages[-1]["type"] not in ("done", "error"):
        messages.append(receive(ws))
    return messages


def test_websocket_run_ping_cancel(target: Target) -> None:
    with ws_connect(
        f"{target.ws_url}/agents/ws", additional_headers=target.auth()
    ) as ws:
        assert receive(ws) == {"type": "ready"}
        ws.send(json.dumps({"type": "ping"}))
        assert receive(ws) == {"type": "pong"}
        messages = run_over(ws, "over the socket")
        assert messages[-1] == DONE
        assert "".join(m["text"] for m in messages if m["type"] == "text") == (
            "You said: over the socket"
        )
        assert any(
            m["type"] == "usage" and m["usage"]["output_tokens"] for m in messages
        )
        ws.send(json.dumps({"type": "run", "prompt": LONG_PROMPT}))
        assert receive(ws)["type"] == "tool_call"
        ws.send(json.dumps({"type": "cancel"}))
        while (message := receive(ws))["type"] != "cancelled":
            assert message["type"] in {"tool_result", "text"}, message


def test_models_outside_the_allow_list_are_refused(target: Target) -> None:
    with target.client(headers=target.auth()) as client:
        chosen = client.post("/agents/run", json={**RUN, "model": OTHER_MODEL})
        assert chosen.status_code == 200, chosen.text
        assert chosen.json()["usage"][0]["model"] == OTHER_MODEL
        unlisted = {**RUN, "model": "unlisted-model"}
        refused = [
            client.post("/agents/run", json=unlisted),
            client.post("/agents/run/async", json=unlisted),
            client.get("/agents/run/stream", params=unlisted),
        ]
    for response in refused:
        error = assert_envelope(response, 422, "model_not_allowed")
        assert "unlisted-model" in error["message"]
    with ws_connect(
        f"{target.ws_url}/agents/ws", additional_headers=target.auth()
    ) as ws:
        assert receive(ws) == {"type": "ready"}
        ws.send(json.dumps({"type": "run", **unlisted}))
        message = receive(ws)
        assert message["type"] == "error", message
        assert "unlisted-model" in message["text"]
        assert run_over(ws, "still open")[-1]["type"] == "done"


# --- one event contract: the same shapes from every target --------------------------------

TIMED_OUT = " ".join(["slow"] * 1500)  # ~30 s of fake agent output, past AGENT_TIMEOUT
# The project's StreamEvent: every SSE event and every WebSocket chunk frame has these.
EVENT_KEYS = {"type": "str", "text": "str", "data": "dict", "usage": "NoneType"}
# (transport, run) -> target name -> shapes; a target's shapes are compared with those of
# every target that ran before it in this session.
SEEN: dict[tuple[str, str], dict[str, Any]] = {}


def shape(value: Any) -> Any:
    """Keys and value types, recursively; values themselves are left out."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(item) for item in value]
    return type(value).__name__


def top_level(event: dict[str, Any], kind: str) -> dict[str, str]:
    """Keys and value types of one event; only a `usage` event has a usage object."""
    types = {key: type(value).__name__ for key, value in event.items()}
    if kind == "usage" and types.get("usage") == "dict":
        types["usage"] = "NoneType"
    return types


def collapse(shapes: list[Any]) -> list[Any]:
    """One entry per run of equal shapes: the number of text chunks is not the contract."""
    return [s for i, s in enumerate(shapes) if i == 0 or s != shapes[i - 1]]


def same_as_other_targets(target: Target, key: tuple[str, str], shapes: Any) -> None:
    seen = SEEN.setdefault(key, {})
    seen[target.name] = shapes
    for other, theirs in seen.items():
        assert shapes == theirs, f"{key}: {target.name} differs from {other}"


@pytest.mark.parametrize("run", ["normal", "timed_out"])
def test_sse_event_shapes_are_one_contract(target: Target, run: str) -> None:
    prompt = "shape of things" if run == "normal" else TIMED_OUT
    with target.client(headers=target.auth()) as client:
        events = read_stream(client, prompt=prompt)
    # Every event, the final done or error included, has the next id (Last-Event-ID).
    assert [event_id for _, _, event_id in events] == [
        str(i) for i in range(1, len(events) + 1)
    ], events
    for kind, data, _ in events:
        assert top_level(data, kind) == EVENT_KEYS, (kind, data)
    shapes = collapse([(kind, shape(data)) for kind, data, _ in events])
    kinds = [kind for kind, _ in shapes]
    if run == "normal":
        assert kinds == ["tool_call", "tool_result", "text", "usage", "done"], kinds
        assert events[-1][1] == DONE
    else:
        assert kinds[-1] == "error" and "done" not in kinds, kinds
        assert events[-1][1] == TIMEOUT
    same_as_other_targets(target, ("sse", run), shapes)


@pytest.mark.parametrize("run", ["normal", "timed_out"])
def test_websocket_event_shapes_are_one_contract(target: Target, run: str) -> None:
    prompt = "shape of things" if run == "normal" else TIMED_OUT
    with ws_connect(
        f"{target.ws_url}/agents/ws", additional_headers=target.auth()
    ) as ws:
        assert receive(ws) == {"type": "ready"}
        messages = run_over(ws, prompt)
    *chunks, last = messages
    for message in chunks:
        assert top_level(message, message["type"]) == EVENT_KEYS, message
    # The final frame is the SSE event's data: the same fields, the id aside.
    if run == "normal":
        assert last == DONE
    else:
        assert last == TIMEOUT
    same_as_other_targets(target, ("ws", run), collapse([shape(m) for m in messages]))


def refused(url: str, headers: dict[str, str] | None = None) -> InvalidStatus:
    with (
        pytest.raises(InvalidStatus) as error,
        ws_connect(url, additional_headers=headers or {}),
    ):
        pass
    return error.value


@pytest.mark.parametrize(
    ("alg", "code"),
    [(None, "missing_credentials"), ("none", "invalid_token")],
    ids=["none", "alg-none"],
)
def test_websocket_is_refused_at_the_handshake(
    target: Target, alg: str | None, code: str
) -> None:
    headers = {"Authorization": f"Bearer {TOKENS.token('x', alg=alg)}"} if alg else None
    response = refused(f"{target.ws_url}/agents/ws", headers).response
    assert response.status_code == 401
    assert json.loads(response.body or b"{}")["error"]["code"] == code


# --- tickets ----------------------------------------------------------------------------------


def new_ticket(client: httpx.Client) -> str:
    response = client.post("/auth/tickets")
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"ticket", "expires_in"}
    assert body["expires_in"] == 2  # TICKET_TTL_SECONDS
    ticket: str = body["ticket"]
    return ticket


def test_ticket_opens_one_sse_stream(target: Target) -> None:
    with target.client(headers=target.auth()) as owner, target.client() as browser:
        ticket = new_ticket(owner)
        events = read_stream(browser, prompt="by ticket", ticket=ticket)
        assert events[-1][0] == "done"
        again = browser.get(
            "/agents/run/stream", params={"prompt": "x", "ticket": ticket}
        )
        assert_envelope(again, 401, "invalid_ticket")
        # Tickets are for GET and WebSocket only.
        post = browser.post(
            "/agents/run", params={"ticket": new_ticket(owner)}, json=RUN
        )
        assert_envelope(post, 401, "missing_credentials")


def test_ticket_opens_one_websocket(target: Target) -> None:
    with target.client(headers=target.auth()) as owner:
        ticket = new_ticket(owner)
    url = f"{target.ws_url}/agents/ws?ticket={ticket}"
    with ws_connect(url) as ws:
        assert receive(ws) == {"type": "ready"}
        assert run_over(ws, "ticketed")[-1] == DONE
    response = refused(url).response
    assert response.status_code == 401
    assert json.loads(response.body or b"{}")["error"]["code"] == "invalid_ticket"


def test_ticket_expires(target: Target) -> None:
    with target.client(headers=target.auth()) as owner, target.client() as browser:
        ticket = new_ticket(owner)
        time.sleep(3)
        late = browser.get(
            "/agents/run/stream", params={"prompt": "x", "ticket": ticket}
        )
    assert_envelope(late, 401, "invalid_ticket")


def test_ticket_needs_credentials(target: Target) -> None:
    with target.client() as client:
        assert_envelope(client.post("/auth/tickets"), 401, "missing_credentials")


# --- jobs -------------------------------------------------------------------------------------


def submit(client: httpx.Client, prompt: str) -> str:
    response = client.post("/agents/run/async", json={"prompt": prompt})
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "queued"
    assert response.headers["location"] == f"/agents/jobs/{body['job_id']}"
    job_id: str = body["job_id"]
    return job_id


def test_job_completes_and_is_private(target: Target) -> None:
    with target.client(headers=target.auth()) as client:
        job_id = submit(client, "queued job please")
        job = wait_for_job(client, job_id, TERMINAL)
        assert job["status"] == "completed", job
        assert job["result"] == "You said: queued job please"
        assert job["progress"] == 1.0
        assert job["usage"][0]["input_tokens"] == 3
        assert job["started_at"] and job["finished_at"] and job["created_at"]
        assert job["cancel_requested"] is False
        assert_envelope(client.delete(f"/agents/jobs/{job_id}"), 409, "job_finished")
    with target.client(headers=target.auth()) as stranger:
        assert_envelope(stranger.get(f"/agents/jobs/{job_id}"), 404, "job_not_found")
        assert_envelope(stranger.delete(f"/agents/jobs/{job_id}"), 404, "job_not_found")
        assert_envelope(
            stranger.get(f"/agents/jobs/{uuid.uuid4()}"), 404, "job_not_found"
        )


def test_running_job_is_cancelled(target: Target) -> None:
    with target.client(headers=target.auth()) as client:
        job_id = submit(client, LONG_PROMPT)
        wait_for_job(client, job_id, {"running"})
        started = time.monotonic()
        cancel = client.delete(f"/agents/jobs/{job_id}")
        assert cancel.status_code == 202, cancel.text
        assert cancel.json()["cancel_requested"] is True
        job = wait_for_job(client, job_id, TERMINAL, timeout=15)
        assert job["status"] == "cancelled", job
        assert job["result"] is None
        # The fake agent needs ~6 s more: it was really stopped.
        assert time.monotonic() - started < 5
        assert_envelope(client.delete(f"/agents/jobs/{job_id}"), 409, "job_finished")


def test_a_cancel_racing_the_claim_has_one_outcome(target: Target) -> None:
    """DELETE right behind the submit, while a worker may be claiming the job: each job
    ends either cancelled (no result) or, if it finished first, completed; never a job
    recorded cancelled that the agent then finishes, or the reverse."""
    prompt = " ".join(["race"] * 10)  # ~0.2 s of fake agent output
    with target.client(headers=target.auth()) as client:
        jobs = []
        for _ in range(8):
            job_id = submit(client, prompt)
            cancel = client.delete(f"/agents/jobs/{job_id}")
            assert cancel.status_code in (202, 409), cancel.text
            jobs.append(job_id)
        ended = [wait_for_job(client, job_id, TERMINAL) for job_id in jobs]
        time.sleep(1)  # any run still going would move its job meanwhile
        for job in ended:
            assert job["status"] in {"cancelled", "completed"}, job
            expected = None if job["status"] == "cancelled" else f"You said: {prompt}"
            assert job["result"] == expected, job
            again = client.get(f"/agents/jobs/{job['job_id']}").json()
            assert (again["status"], again["progress"]) == (
                job["status"],
                job["progress"],
            )


def test_idempotency_key_gives_one_job_per_caller_and_key(target: Target) -> None:
    key = {"Idempotency-Key": uuid.uuid4().hex}
    body = {"prompt": "submitted once"}
    with target.client(headers=target.auth()) as client:
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            sent = list(
                pool.map(
                    lambda _: client.post("/agents/run/async", json=body, headers=key),
                    range(4),
                )
            )
        assert [r.status_code for r in sent] == [202] * 4, [r.text for r in sent]
        assert len({r.json()["job_id"] for r in sent}) == 1, [r.json() for r in sent]
        job_id = sent[0].json()["job_id"]
        assert sorted(r.headers.get("idempotent-replayed", "") for r in sent) == [
            "",
            "true",
            "true",
            "true",
        ]
        assert {r.headers["location"] for r in sent} == {f"/agents/jobs/{job_id}"}
        wait_for_job(client, job_id, TERMINAL)
        later = client.post("/agents/run/async", json=body, headers=key)
        assert later.status_code == 202, later.text
        assert later.json()["job_id"] == job_id
        assert later.json()["status"] == "completed"
        reused = client.post(
            "/agents/run/async", json={"prompt": "another prompt"}, headers=key
        )
        assert_envelope(reused, 422, "idempotency_key_reused")
    with target.client(headers=target.auth()) as stranger:
        theirs = stranger.post("/agents/run/async", json=body, headers=key)
        assert theirs.status_code == 202, theirs.text
        assert theirs.json()["job_id"] != job_id
        assert "idempotent-replayed" not in theirs.headers


# --- rate limit and concurrency cap -----------------------------------------------------------


def test_rate_limit_is_exact_across_workers(target: Target) -> None:
    extra = 8
    statuses: list[int] = []
    retry_after: list[str] = []
    with target.client(headers=target.auth()) as client:
        for _ in range(RATE_LIMIT + extra):
            response = client.get(f"/agents/jobs/{uuid.uuid4()}")
            statuses.append(response.status_code)
            if response.status_code == 429:
                assert_envelope(response, 429, "rate_limited")
                retry_after.append(response.headers.get("retry-after", ""))
        # Another caller from the same address has a budget of its own.
        other = client.get(f"/agents/jobs/{uuid.uuid4()}", headers=target.auth())
    # Counting per process would let about twice the limit through with two workers.
    assert statuses == [404] * RATE_LIMIT + [429] * extra, statuses
    assert all(
        v.isdigit() and 0 < int(v) <= RATE_LIMIT_WINDOW for v in retry_after
    ), retry_after
    assert other.status_code == 404


def test_concurrent_runs_are_capped_per_process(target: Target) -> None:
    """AGENT_MAX_CONCURRENT_RUNS=1 and 2 workers: of 3 streams opened at once, at most 2
    start (the third waits for a slot, without an answer yet); all 3 then finish."""
    prompt = " ".join(["slow"] * 60)  # ~1.3 s each

    def stream() -> tuple[float, list[str]]:
        with target.client(headers=target.auth()) as client:
            sent = time.monotonic()
            with connect_sse(
                client, "GET", "/agents/run/stream", params={"prompt": prompt}
            ) as s:
                answered = time.monotonic() - sent
                kinds = [event.event for event in s.iter_sse()]
        return answered, kinds

    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda _: stream(), range(3)))
    assert all(kinds[-1] == "done" for _, kinds in results)
    answered = sorted(seconds for seconds, _ in results)
    # The last stream got its headers only after another stream ended.
    assert answered[-1] > 1.0, answered


def test_sse_disconnect_stops_the_run(target: Target) -> None:
    """A client that leaves an SSE stream frees its run slot at once (the run stops):
    with AGENT_MAX_CONCURRENT_RUNS=1, runs sent right after the disconnect must not wait
    for the ~30 s the abandoned run would have taken."""
    prompt = " ".join(["long"] * 1500)
    with target.client(headers=target.auth()) as client:
        with connect_sse(
            client, "GET", "/agents/run/stream", params={"prompt": prompt}
        ) as s:
            for event in s.iter_sse():
                if event.event == "text":
                    break
        started = time.monotonic()

        def quick(_: int) -> int:
            with target.client(headers=target.auth()) as other:
                return other.post("/agents/run", json=RUN).status_code

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            codes = list(pool.map(quick, range(4)))
    assert codes == [200] * 4
    assert time.monotonic() - started < 20
