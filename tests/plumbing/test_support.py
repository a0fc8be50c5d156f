"""The support package's own promises, beyond the services and processes of
test_fixtures.py: commands fail loudly, scaffold options are the manifest's, minted tokens
are real JWTs, metrics add up, polling has a deadline."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import httpx
import jwt
import pytest
from forge_testing import UV_CACHE_DIR, CommandFailed, clean_env, run, wait_for
from forge_testing.metrics import metric_by_label, metric_total
from forge_testing.scaffolding import COMBOS, FLAGS, option_values, scaffold
from forge_testing.tokens import JwtMinter, bearer, jwt_claims, mint_jwt

SECRET = "plumbing-secret-" + "p" * 48


def test_a_failing_command_raises_with_its_whole_output(tmp_path: Path) -> None:
    with pytest.raises(CommandFailed) as failed:
        run(["sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 3"], cwd=tmp_path)
    message = str(failed.value)
    assert "exit 3" in message
    assert "to-stdout" in message and "to-stderr" in message


def test_clean_env_leaves_the_test_venv_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIRTUAL_ENV", "/somewhere/.venv")
    monkeypatch.setenv("PYTHONPATH", "/somewhere/tests")
    monkeypatch.setenv("PYTEST_ADDOPTS", "-x")
    env = clean_env(EXTRA="1")
    assert not {"VIRTUAL_ENV", "PYTHONPATH", "PYTEST_ADDOPTS"} & set(env)
    assert env["UV_CACHE_DIR"] == str(UV_CACHE_DIR)
    assert env["UV_PYTHON_DOWNLOADS"] == "never"
    assert env["EXTRA"] == "1"


@pytest.mark.parametrize(
    ("tier", "options", "named"),
    [
        (1, {"colour": "red"}, "--colour"),
        (1, {"db": "oracle"}, "--db oracle"),
        (2, {"db": "postgres"}, "--db postgres"),  # Tier 1 only
        (2, {"agent": "none"}, "--agent none"),  # a value of Tier 1 only
    ],
)
def test_scaffold_refuses_what_the_manifest_does_not_offer(
    tmp_path: Path, tier: int, options: dict[str, str], named: str
) -> None:
    with pytest.raises(ValueError, match=named):
        scaffold(tmp_path / "out", tier=tier, **options)
    assert not (tmp_path / "out").exists()


def test_combos_are_tier1_options_of_the_manifest() -> None:
    for combo in COMBOS:
        for flag in FLAGS:
            assert getattr(combo, flag) in option_values(flag, 1), (combo, flag)


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_minted_tokens_verify_with_pyjwt(alg: str) -> None:
    claims = jwt_claims("ann", audience="aud", issuer="iss", role="admin")
    token = mint_jwt(claims, SECRET, alg)
    decoded = jwt.decode(token, SECRET, algorithms=[alg], audience="aud", issuer="iss")
    assert decoded["sub"] == "ann" and decoded["role"] == "admin"
    assert decoded["exp"] - decoded["iat"] == 600
    assert bearer(token) == {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize(
    ("token", "error"),
    [
        (
            mint_jwt(jwt_claims("ann", audience="aud"), alg="none"),
            jwt.InvalidAlgorithmError,
        ),
        (
            mint_jwt(jwt_claims("ann", audience="aud"), "other-" + SECRET),
            jwt.InvalidSignatureError,
        ),
        (
            mint_jwt(jwt_claims("ann", audience="aud", lifetime=-60), SECRET),
            jwt.ExpiredSignatureError,
        ),
        (
            mint_jwt(jwt_claims(None, audience="aud"), SECRET),
            jwt.MissingRequiredClaimError,
        ),
    ],
    ids=["alg none", "other secret", "expired", "no subject"],
)
def test_bad_tokens_are_bad_for_pyjwt_too(token: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        jwt.decode(
            token,
            SECRET,
            algorithms=["HS256"],
            audience="aud",
            options={"require": ["sub", "exp"]},
        )


METRICS = textwrap.dedent(
    """\
    # HELP hits_total Hits.
    # TYPE hits_total counter
    hits_total{route="/a",status="200"} 3.0
    hits_total{route="/a",status="404"} 1.0
    hits_total{route="/b",status="200"} 2.0
    """
)


def test_metrics_add_up_by_labels() -> None:
    assert metric_total(METRICS, "hits_total") == 6
    assert metric_total(METRICS, "hits_total", status="200") == 5
    assert metric_total(METRICS, "hits_total", route="/c") == 0
    assert metric_by_label(METRICS, "hits_total", "route", status="200") == {
        "/a": 3,
        "/b": 2,
    }


def test_wait_for_gives_up_at_its_deadline() -> None:
    with pytest.raises(AssertionError, match="no miracle within 0s"):
        wait_for(lambda: False, "miracle", timeout=0.2)


APP = textwrap.dedent(
    """
    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
    """
)


def test_a_server_comes_back_on_its_port(run_uvicorn, tmp_path: Path) -> None:
    (tmp_path / "tiny.py").write_text(APP)
    first = run_uvicorn("tiny:app", python=sys.executable, cwd=tmp_path)
    first.stop()
    again = run_uvicorn(
        "tiny:app", python=sys.executable, cwd=tmp_path, port=first.port
    )
    assert again.port == first.port
    assert httpx.get(f"{again.url}/health", timeout=5).text == "ok"


def test_a_minter_breaks_one_thing_at_a_time() -> None:
    minter = JwtMinter(SECRET, "aud", "iss")

    def decode(token: str) -> dict[str, object]:
        return jwt.decode(
            token, SECRET, algorithms=["HS256"], audience="aud", issuer="iss"
        )

    assert decode(minter.token("ann"))["sub"] == "ann"
    with pytest.raises(jwt.InvalidSignatureError):
        decode(minter.token("ann", secret="other-" + SECRET))
    with pytest.raises(jwt.InvalidAudienceError):
        decode(minter.token("ann", aud="someone-else"))
    with pytest.raises(jwt.ExpiredSignatureError):
        decode(minter.token("ann", lifetime=-60))
    first, second = minter.fresh_caller(), minter.fresh_caller()
    assert first != second
    assert decode(first["Authorization"].removeprefix("Bearer "))["sub"]
