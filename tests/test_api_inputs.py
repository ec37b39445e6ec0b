"""Misuse of the service: what an error answer may carry, what /health tells a stranger, which tokens
production accepts."""

from __future__ import annotations

import json
import logging
import subprocess

import httpx
import pytest
import sqlalchemy as sa

from apiserver import AUTH, SHARED_SETTINGS, server_env, shared_server, shared_store, uplift_command

LEAKS = ("SELECT", "[SQL", "parameters", "Traceback", "sqlite:", "/tmp", "/work")


@pytest.fixture(scope="module")
def api(request, tmp_path_factory, strong_table):
    base = shared_server(request, tmp_path_factory, strong_table, **SHARED_SETTINGS)
    with httpx.Client(base_url=base, headers=AUTH, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def row(api) -> dict:
    """A valid row: every feature column of the model, numbers 0 and text 'x'."""
    features = api.get("/model").json()["features"]
    return {f["name"]: (0 if f["kind"] == "numeric" else "x") for f in features}


# -- redaction, in-process ---------------------------------------------------------------------------
def test_echo_is_a_short_escaped_prefix_whatever_the_value():
    from uplift.api.redact import ECHO_CHARS, echo

    assert echo("abc") == "'abc'"
    assert echo("x" * 1_000_000) == "'" + "x" * ECHO_CHARS + "'... (1000000 characters)"
    assert echo("\x1b[31mred\u202e") == "'\\x1b[31mred\\u202e'"
    nested: list = []
    for _ in range(10_000):
        nested = [nested]
    for value in (nested, {"k" * 500: ["v" * 5000] * 1000}, list(range(100_000)), 10**300):
        assert len(echo(value)) <= 2 * ECHO_CHARS + 3, echo(value)


def test_short_reason_drops_sql_parameters_paths_and_ids(tmp_path):
    from uplift.api.redact import short_reason

    corrupt = tmp_path / "mlflow.db"
    corrupt.write_bytes(b"not a database " * 1000)
    engine = sa.create_engine(f"sqlite:///{corrupt}")
    with pytest.raises(sa.exc.DatabaseError) as caught:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT * FROM runs WHERE run_uuid = ?", ("1f50ac22c16e4feb8a5f8328a9f77b39",))
    reason = short_reason(caught.value)
    assert reason == "DatabaseError: file is not a database"
    assert "SELECT" in str(caught.value) and "1f50ac22" in str(caught.value)  # what the full text carries
    other = short_reason(OSError(f"no model at {tmp_path}/m for run 1f50ac22c16e4feb8a5f8328a9f77b39 (sqlite:///x.db)\n"
                                 "second line"))
    assert other == "OSError: no model at <path> for run <id> (<uri>)"


def test_validation_details_are_capped_and_never_carry_the_input():
    from uplift.api.handlers import MAX_ERRORS, validation_details

    huge = "i" * 10**6
    errors = [{"loc": ("body", "rows", i, "k" * 5000), "msg": "bad " + "m" * 5000, "type": "t", "input": huge}
              for i in range(1000)]
    out = validation_details(errors)
    assert len(out) == MAX_ERRORS + 1 and out[-1]["msg"] == f"{1000 - MAX_ERRORS} more error(s) left out"
    assert len(json.dumps(out)) < 20_000 and "iiii" not in json.dumps(out)


# -- error answers over HTTP -------------------------------------------------------------------------
def test_a_rejected_megabyte_comes_back_as_a_short_prefix(api, row):
    big = "x" * 900_000  # the shared server takes bodies up to 1,000,000 bytes
    for column, value in (("age", big), ("age", {"a": big}), ("age", [big[:300_000]] * 3), ("gender", 7)):
        r = api.post("/scores", json={"rows": [{**row, column: value}]})
        assert r.status_code == 422 and len(r.content) < 400, (column, len(r.content))
        (entry,) = r.json()["detail"]
        assert entry["loc"] == ["body", "rows", 0, column]
    assert "(900000 characters)" in api.post("/scores", json={"rows": [{**row, "age": big}]}).text
    escaped = api.post("/scores", json={"rows": [{**row, "age": "\x1b[2J\x07"}]}).json()["detail"][0]["msg"]
    assert "\x1b" not in escaped and "\\x1b[2J\\x07" in escaped


def test_every_error_answer_is_short(api, row):
    long = "z" * 100_000
    cases = [
        ("POST", "/plans", {"budget": 10, "channels": [long] * 50}),
        ("POST", "/plans", {"budget": 10, "channels": ["c" * 150] * 50}),
        ("POST", "/plans", {"budget": 10, "policy": {long: 1}}),
        ("POST", "/plans", {"budget": 10, "policy": {"holdout_share": long}}),
        ("POST", "/plans", {"budget": 10, "costs": {"channels.email.cost_per_contact": long}}),
        ("POST", "/plans", {"budget": 10, "extra" + long: 1}),
        ("POST", "/plans", {"budget": long}),
        ("POST", "/scores", {"rows": [1] * 5000}),
        ("POST", "/scores", {"rows": [{**row, "age": long}] * 400}),
        ("GET", "/plans/" + "a" * 64, None),
        ("POST", "/plans/" + "%1b" * 60 + "/approve", None),
    ]
    for method, path, body in cases:
        r = api.request(method, path, json=body)
        assert 400 <= r.status_code < 500, (path, r.status_code)
        assert len(r.content) < 4_000, (path, body if body is None else list(body)[:2], len(r.content))
        assert "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz" not in r.text  # at most a 40-character prefix
        for word in LEAKS:
            assert word not in r.text


# -- /health to a stranger ---------------------------------------------------------------------------
def _app_with_failing_registry(tmp_path, tokens: str):
    """The application (no lifespan) over a model store whose registry is a corrupt SQLite file."""
    from uplift.api import create_app
    from uplift.api.modelstore import ModelStore
    from uplift.api.settings import ServiceSettings

    corrupt = tmp_path / "mlflow.db"
    corrupt.write_bytes(b"not a database " * 1000)
    engine = sa.create_engine(f"sqlite:///{corrupt}")

    def resolve() -> str:
        with engine.connect() as conn:
            return conn.exec_driver_sql("SELECT version FROM model_versions WHERE run_id = ?",
                                        ("1f50ac22c16e4feb8a5f8328a9f77b39",)).scalar_one()

    store = ModelStore(resolve=resolve, load=lambda v: None, poll_seconds=3600)
    store.refresh()
    app = create_app(ServiceSettings(tokens=tokens, workdir=tmp_path))
    app.state.model_store = store
    return app


def test_health_tells_a_stranger_the_status_only(tmp_path):
    from fastapi.testclient import TestClient

    from uplift.api.tokens import new_token

    token = new_token()
    client = TestClient(_app_with_failing_registry(tmp_path, f"ops:{token}"))
    for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"}, {"Authorization": f"Basic {token}"}):
        r = client.get("/health", headers=headers)
        assert r.status_code == 503 and r.json() == {"status": "down"}, headers
    detailed = client.get("/health", headers={"Authorization": f"Bearer {token}"})
    assert detailed.status_code == 503 and detailed.json()["reason"] == (
        "cannot resolve the model alias (DatabaseError: file is not a database)")
    for word in (*LEAKS, "1f50ac22", str(tmp_path)):
        assert word not in detailed.text
    model = client.get("/model", headers={"Authorization": f"Bearer {token}"})
    assert model.status_code == 503 and "SELECT" not in model.text


# -- tokens --------------------------------------------------------------------------------------------
WEAK = ["aaaaaaaaaaaaaaaa", "changeme-changeme", "changeme-changeme-changeme-changeme",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "passwordpasswordpasswordpassword1",
        "0123456789abcdef0123456789abcdef"]


@pytest.mark.parametrize("token", WEAK)
def test_production_refuses_weak_tokens_and_says_how_to_make_one(token, monkeypatch, tmp_path):
    from uplift.api.settings import load_service_settings
    from uplift.errors import SpecError

    monkeypatch.setenv("UPLIFT_SERVICE_CONFIG", str(tmp_path / "none.yaml"))
    (tmp_path / "none.yaml").write_text("{}\n")
    with pytest.raises(SpecError, match="uplift token") as caught:
        load_service_settings(mode="production", tokens=f"ops:{token}")
    assert token not in str(caught.value) and "'ops'" in str(caught.value)
    assert load_service_settings(mode="dev", tokens=token).mode == "dev"  # dev mode takes it (with a warning)


def test_production_takes_strong_tokens_and_names_them(monkeypatch, tmp_path):
    from uplift.api.settings import load_service_settings
    from uplift.api.tokens import new_token

    monkeypatch.setenv("UPLIFT_SERVICE_CONFIG", str(tmp_path / "none.yaml"))
    (tmp_path / "none.yaml").write_text("{}\n")
    first, second = new_token(), new_token()
    settings = load_service_settings(mode="production", tokens=f"anna:{first},{second}")
    named = dict(settings.named_tokens())
    assert named["anna"] == first.encode()
    (unnamed,) = [n for n in named if n != "anna"]
    assert unnamed.startswith("token-") and len(unnamed) == 14 and second not in unnamed


@pytest.mark.parametrize("tokens, problem", [
    ("bad name:" + "x" * 40, "name must be"),
    (f"a:{'k' * 40},a:{'j' * 40}", "share a name"),
    (f"a:{'k' * 40},b:{'k' * 40}", "same token"),
    ("a:short", "shorter than 16"),
])
def test_token_entries_that_are_refused_in_any_mode(tokens, problem, monkeypatch, tmp_path):
    from uplift.api.settings import load_service_settings
    from uplift.errors import SpecError

    monkeypatch.setenv("UPLIFT_SERVICE_CONFIG", str(tmp_path / "none.yaml"))
    (tmp_path / "none.yaml").write_text("{}\n")
    with pytest.raises(SpecError, match=problem):
        load_service_settings(tokens=tokens)


def test_token_strength_rules():
    from uplift.api.tokens import MIN_BITS_PER_CHAR, bits_per_char, new_token, token_weaknesses

    assert bits_per_char("aaaa") == 0.0 and bits_per_char("abcd") == 2.0 and bits_per_char("aabb") == 1.0
    assert token_weaknesses("ab" * 16) == [f"1.00 bits of entropy per character, fewer than {MIN_BITS_PER_CHAR:g}",
                                           "a run of 8 characters occurs twice"]
    assert [w for w in token_weaknesses("x" * 31) if "characters," in w] == ["31 characters, fewer than 32"]
    assert all(token_weaknesses(new_token()) == [] for _ in range(2_000))


def test_dev_mode_warns_about_weak_tokens(tmp_path, caplog):
    from uplift.api import create_app
    from uplift.api.settings import ServiceSettings

    with caplog.at_level(logging.WARNING, logger="uplift.api"):
        create_app(ServiceSettings(tokens="dev:changeme-changeme", workdir=tmp_path))
    assert "token 'dev' is too weak for production" in caplog.text and "changeme" not in caplog.text


def test_uplift_token_prints_a_strong_token_and_where_it_goes():
    from uplift.api.tokens import split_entry, token_weaknesses

    done = subprocess.run([*uplift_command(), "token"], capture_output=True, text=True, timeout=120, check=True)
    token = done.stdout.strip()
    assert token_weaknesses(token) == [] and "UPLIFT_SERVICE_TOKENS" in done.stderr
    from typer.testing import CliRunner

    from uplift.cli import app

    named = CliRunner().invoke(app, ["token", "--name", "anna"])
    assert named.exit_code == 0
    name, secret = split_entry(named.stdout.strip().splitlines()[0])
    assert name == "anna" and token_weaknesses(secret) == [] and secret != token


def test_production_server_refuses_a_weak_token(tmp_path_factory, strong_table):
    store = shared_store(tmp_path_factory, strong_table)
    env = server_env(store, mode="production", tokens="changeme-changeme-changeme-changeme")
    done = subprocess.run([*uplift_command(), "serve", "--port", "1"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode != 0
    assert "refusing to start" in done.stderr and "uplift token" in done.stderr
