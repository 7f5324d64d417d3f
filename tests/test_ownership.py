"""Users and permissions through the API and the dashboard (on SQLite and PostgreSQL):
sign-up through the allow-list, each user sees and changes only their own work, admin
actions are refused to ordinary users, the leaderboard's public setting."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import ttg_lab
from ttg_lab.errors import NotFoundError, PermissionDeniedError, ValidationError
from ttg_lab.lab import Lab
from ttg_lab.models import ModelInfo
from widgets.admin import AdminController
from widgets.app import Dashboard
from widgets.models import ModelsController
from widgets.reasoning import ReasoningController

PERIOD = {"start": "2025-06-10", "end": "2025-06-24"}


@pytest.fixture()
def team(lab: Lab, db_url: str) -> Iterator[dict[str, Lab]]:
    """The local admin, alice (allow-listed) and bob (approved by the admin), each with
    a model called "momentum" and one finished run of it."""
    lab.users.allow("@team.org")
    lab.users.sign_up("alice@team.org", "Alice")
    bob = lab.users.sign_up("bob@elsewhere.org", "Bob")
    assert not bob.approved
    lab.users.approve("bob")
    labs = {
        "admin": lab,
        "alice": ttg_lab.open(db_url, user="alice"),
        "bob": ttg_lab.open(db_url, user="bob"),
    }
    for name in ("alice", "bob"):
        model = labs[name].models.create(
            "momentum", ai_model_id="baseline/momentum", initial_cash=100_000.0
        )
        run = labs[name].start_run(model, path="direct", background=False, **PERIOD)
        assert run.status == "completed"
    yield labs
    for name in ("alice", "bob"):
        labs[name].close()


def only(lab: Lab) -> ModelInfo:
    [model] = lab.models.list()
    return model


def run_of(lab: Lab) -> int:
    return int(lab.runs().table().iloc[0]["id"])


def test_sign_up_needs_the_allow_list_or_an_admin(lab: Lab, db_url: str) -> None:
    lab.users.allow("carol@team.org", role="admin")
    carol = lab.users.sign_up("carol@team.org", "Carol")
    assert carol.approved and carol.role == "admin" and carol.username == "carol"
    dave = lab.users.sign_up("dave@elsewhere.org", "Dave")
    assert not dave.approved
    with pytest.raises(PermissionDeniedError, match="dave has signed up and is waiting"):
        ttg_lab.open(db_url, user="dave")
    # an unknown name (a JupyterHub user new to the lab) signs up and waits, too
    with pytest.raises(PermissionDeniedError, match="erin has signed up and is waiting"):
        ttg_lab.open(db_url, user="erin")
    assert set(lab.users.pending()["username"]) == {"dave", "erin"}
    lab.users.reject("erin")
    lab.users.approve("dave")
    dave_lab = ttg_lab.open(db_url, user="dave")
    assert dave_lab.users.me() == {
        "username": "dave",
        "email": "dave@elsewhere.org",
        "role": "user",
        "admin": False,
    }
    dave_lab.close()
    with pytest.raises(ValidationError, match="has signed up already"):
        lab.users.sign_up("dave@elsewhere.org", "Dave again")
    with pytest.raises(ValidationError, match="not an email"):
        lab.users.sign_up("'; DROP TABLE users;--", "Mallory")
    with pytest.raises(ValidationError, match="allow-list entries are emails or '@domain'"):
        lab.users.allow("team.org")


def test_users_see_and_change_only_their_own_work(team: dict[str, Lab]) -> None:
    alice, bob, admin = team["alice"], team["bob"], team["admin"]
    mine, theirs = only(alice), only(bob)
    assert mine.signature == "momentum" and theirs.signature == "momentum-bob"
    assert alice.models.get("momentum") == mine and bob.models.get("momentum") == theirs
    assert list(alice.runs().table()["model"]) == ["momentum"]
    bob_run = run_of(bob)
    refused: list[Callable[[], Any]] = [
        lambda: alice.run(bob_run),
        lambda: alice.run(bob_run).metrics(),
        lambda: alice.run(bob_run).resume(),
        lambda: alice.run(bob_run).replay(),
        lambda: alice.analyst(bob_run),
        lambda: alice.run(bob_run).attribution(),
        lambda: alice.rules.decisions(bob_run),
        lambda: alice.models.get(theirs.id),
        lambda: alice.models.update(theirs.id, description="mine now"),
        lambda: alice.models.delete(theirs.id),
        lambda: alice.rules.add(theirs.id, "cap", {"max_position_pct": 10}),
        lambda: alice.start_run(theirs.id, path="direct", background=False, **PERIOD),
        lambda: alice.runs(theirs.id),
    ]
    for attempt in refused:
        with pytest.raises(NotFoundError):
            attempt()
    with pytest.raises(PermissionDeniedError, match="another user's trading profile"):
        alice.profile.show(user_id=theirs.owner_id)
    # the analyst cannot be talked into comparing with someone else's run
    chat = alice.analyst(run_of(alice))
    with pytest.raises(NotFoundError):
        chat.tools.compare_runs(bob_run)
    # nothing of bob's changed; the admin sees everyone's work
    assert bob.models.get(theirs.id).description == theirs.description
    assert len(bob.runs()) == 1 and len(admin.runs()) == 2
    assert {m.signature for m in admin.models.list()} == {"momentum", "momentum-bob"}
    assert admin.run(bob_run).status == "completed"


def foreign_ids(lab: Lab) -> dict[str, int]:
    """Ids of one user's work, by the kind a tool argument names (``..._<kind>_id``)."""
    from sqlalchemy import select

    from ttg_lab.store.schema import ChatSession, LedgerEntry, ReasoningEntry

    run_id = run_of(lab)
    chat = lab.analyst(run_id)
    with lab.store.session() as session:
        trade = session.scalar(select(LedgerEntry.id).where(LedgerEntry.run_id == run_id))
        entry = session.scalar(select(ReasoningEntry.id).where(ReasoningEntry.run_id == run_id))
        assert session.get(ChatSession, chat.session_id) is not None
    assert trade is not None and entry is not None
    ids = {"run": run_id, "model": only(lab).id, "trade": trade, "reasoning": entry}
    return {**ids, "entry": entry, "session": chat.session_id, "chat": chat.session_id}


def sample_arguments(fields: dict[str, str | None], ids: dict[str, int]) -> dict[str, Any]:
    """Arguments for a tool from its fields (name -> JSON type when required): every
    ``*_id`` from ``ids`` by its kind (a new kind of id must be added to
    :func:`foreign_ids`), every other required one a plain sample."""
    samples: dict[str, Any] = {
        "string": "AAPL",
        "integer": 1,
        "number": 1.0,
        "boolean": False,
        "array": [],
        "object": {"max_position_pct": 10},
    }
    arguments = {}
    for name, kind in fields.items():
        if name == "id" or (name.endswith("_id") and name != "order_id"):
            known = [k for k in ids if name == f"{k}_id" or name.endswith(f"_{k}_id")]
            assert known, f"tool argument {name}: which kind of id is it? add it to foreign_ids"
            arguments[name] = ids[known[0]]
        elif kind is not None:
            arguments[name] = samples[kind]
    return arguments


def test_every_agent_tool_answers_not_found_for_another_users_ids(team: dict[str, Lab]) -> None:
    """Every tool of every agent, taken from the registries (the analyst's tool list and
    the trader's MCP tools), called as bob with alice's ids (runs, trades, reasoning
    entries, models, chats) or bound to alice's run, is "not found"; the same calls with
    bob's own ids answer. No tool holds a store: they read through bob's reader."""
    import asyncio
    import dataclasses
    import inspect
    import json

    from fastmcp import Client

    from ttg_lab.analyst.citations import resolve
    from ttg_lab.analyst.llm import analysis_tools
    from ttg_lab.analyst.reader import AnalystReader
    from ttg_lab.analyst.tools import AnalysisTools
    from ttg_lab.engine.context import RunContext
    from ttg_lab.mcp_services.servers import build_service
    from ttg_lab.mcp_services.sessions import SessionRegistry
    from ttg_lab.store.database import Store
    from ttg_lab.tools.registry import TOOLS

    bob = team["bob"]
    theirs, mine = foreign_ids(team["alice"]), foreign_ids(bob)
    reader = AnalystReader(bob.store, bob.user)

    # the analyst: bound to alice's run it does not exist; each id argument given hers
    for bind in (lambda: bob.analyst(theirs["run"]), lambda: AnalysisTools(reader, theirs["run"])):
        with pytest.raises(NotFoundError, match=f"no run {theirs['run']}"):
            bind()
    analyst = bob.analyst(mine["run"])
    assert not [v for v in vars(analyst.tools).values() if isinstance(v, Store)]
    tools = analysis_tools(analyst.tools)
    assert {t.name for t in tools} == {*AnalysisTools.TOOLS, "propose_rule"}
    with_ids = 0
    for tool in tools:
        schema = tool.args_schema.model_json_schema()  # type: ignore[union-attr]
        required = set(schema.get("required", []))
        fields = {
            n: (f.get("type") if n in required else None) for n, f in schema["properties"].items()
        }
        foreign = sample_arguments(fields, theirs)
        own = json.loads(tool.invoke(sample_arguments(fields, mine)))
        assert "error" not in own and "refused" not in own, (tool.name, own)
        if foreign == sample_arguments(fields, mine):
            continue  # no id argument: it reads only the run it is bound to (bob's)
        with_ids += 1
        answer = json.loads(tool.invoke(foreign))
        assert answer == {"error": f"no run {theirs['run']}"}, (tool.name, answer)
    assert with_ids >= 2  # calculate_metrics(run_id=...) and compare_runs(other_run_id=...)

    # citations of alice's work in an answer never resolve, even naming her run as the
    # analyst's; bob's own do
    text = "[run:{run}] [trade:{trade}] [reasoning:{reasoning}]"
    run_ids = {theirs["run"], mine["run"]}
    assert [c.valid for c in resolve(reader, text.format(**theirs), run_ids)] == [False] * 3
    assert [c.valid for c in resolve(reader, text.format(**mine), run_ids)] == [True] * 3

    # the trader's tools: a view of alice's run does not exist for any of them; math
    # tools take no run context at all, so they cannot read anyone's work
    assert not [f for f in dataclasses.fields(RunContext) if "Store" in str(f.type)]
    registry = SessionRegistry(reader)

    async def call(spec_name: str, service: str, run_id: int) -> tuple[bool, str]:
        server = build_service(service, lambda: registry.context_for({"X-TTG-Run": str(run_id)}))
        async with Client(server) as client:
            listed = {t.name: t for t in await client.list_tools()}
            schema = listed[spec_name].inputSchema
            fields = {n: schema["properties"][n].get("type") for n in schema.get("required", [])}
            args = sample_arguments(fields, {})
            result = await client.call_tool(spec_name, args, raise_on_error=False)
            return result.is_error, result.content[0].text  # type: ignore[union-attr]

    for _, spec in TOOLS.items():
        if not spec.needs_context:
            parameters = inspect.signature(spec.function).parameters.values()
            assert not [p for p in parameters if "RunContext" in str(p.annotation)], spec.name
            continue
        error, text = asyncio.run(call(spec.name, spec.service, theirs["run"]))
        assert error and text == f"no run {theirs['run']}", (spec.name, text)
        error, text = asyncio.run(call(spec.name, spec.service, mine["run"]))
        assert f"no run {mine['run']}" not in text, (spec.name, text)


def test_ordinary_users_cannot_reach_admin_actions(team: dict[str, Lab], tmp_path: Any) -> None:
    alice = team["alice"]
    csv = tmp_path / "prices.csv"
    csv.write_text("date,symbol,open,high,low,close,volume\n2025-06-10,ZZZ,1,1,1,1,1\n")
    actions: dict[str, Callable[[], Any]] = {
        "listing users": alice.users.list,
        "approving sign-ups": lambda: alice.users.approve("bob"),
        "rejecting sign-ups": lambda: alice.users.reject("bob"),
        "changing roles": lambda: alice.users.set_role("alice", "admin"),
        "adding users": lambda: alice.users.add("x@team.org", "X"),
        "editing the sign-up allow-list": lambda: alice.users.allow("@evil.org"),
        "changing global settings": lambda: alice.settings.set("leaderboard.public", True),
        "loading market data": lambda: alice.data.load(str(csv), "us"),
        "loading the shipped data": alice.data.load_shipped,
    }
    for action, call in actions.items():
        with pytest.raises(PermissionDeniedError, match=f"{action} needs an admin"):
            call()
    assert alice.users.me()["role"] == "user"
    # the dashboard: no Admin tab, and the admin panel's actions are refused all the same
    board = Dashboard(alice)
    assert "Admin" not in [title for title, _, _ in board.panels]
    assert "Admin" in [title for title, _, _ in Dashboard(team["admin"]).panels]
    panel = AdminController(alice)
    assert not panel.allowed and "needs an admin" in panel.error
    assert (
        not panel.change_role("alice", "admin") and "changing roles needs an admin" in panel.error
    )
    panel.setting_key, panel.setting_value = "leaderboard.public", "true"
    assert not panel.save_setting() and "needs an admin" in panel.error
    # widgets list only her own models, and a cited id of bob's run opens nothing
    reasoning = ReasoningController(alice)
    assert reasoning.model_choices == ["momentum"]
    reasoning.choose("momentum", run_of(team["bob"]))
    assert "no run" in reasoning.error and reasoning.run_id == 0


def test_roles_change_what_a_user_may_do(team: dict[str, Lab], db_url: str) -> None:
    admin = team["admin"]
    admin.users.set_role("alice", "admin")
    promoted = ttg_lab.open(db_url, user="alice")
    assert len(promoted.runs()) == 2 and not promoted.users.list().empty
    promoted.users.set_role("local", "user")
    with pytest.raises(ValidationError, match="cannot demote the last admin"):
        promoted.users.set_role("alice", "user")
    promoted.close()


def test_leaderboard_shows_all_models_only_when_the_setting_allows(team: dict[str, Lab]) -> None:
    alice, admin = team["alice"], team["admin"]
    assert list(alice.leaderboard()["model"]) == ["momentum"]
    assert len(admin.leaderboard()) == 2
    admin.settings.set("leaderboard.public", True)
    assert sorted(alice.leaderboard()["model"]) == ["momentum", "momentum-bob"]
    with pytest.raises(NotFoundError):  # ranked, but still not hers to open
        alice.run(run_of(team["bob"]))


def test_the_dashboard_acts_as_the_jupyterhub_user(
    team: dict[str, Lab], db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from widgets.app import dashboard

    monkeypatch.setenv("TTG_LAB_USER", "bob")
    board = dashboard(db_url)
    assert board is not None and board.lab.user.username == "bob"
    board.lab.close()
    monkeypatch.setenv("JUPYTERHUB_USER", "alice")  # the Hub's user wins over config
    board = dashboard(db_url)
    assert board is not None and board.lab.user.username == "alice"
    assert [m.signature for m in board.lab.models.list()] == ["momentum"]
    board.lab.close()
    monkeypatch.setenv("JUPYTERHUB_USER", "newcomer")
    assert dashboard(db_url) is None  # shown "waiting for an admin's approval" instead
    assert "newcomer" in set(team["admin"].users.pending()["username"])


def signed_in_through_jupyterhub(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """The environment JupyterHub's spawner gives a user's server."""
    monkeypatch.setenv("JUPYTERHUB_USER", name)
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "hub-api-token-of-" + name)


def test_under_jupyterhub_the_hub_user_is_who_the_lab_is(
    team: dict[str, Lab], db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Signed in through the Hub, bob is bob: --user, user= and TTG_LAB_USER cannot make
    him alice or the local admin, nor make him an admin; an admin of the Hub may act as
    another user."""
    from click.testing import CliRunner

    from ttg_lab.cli import main
    from widgets.app import dashboard

    signed_in_through_jupyterhub(monkeypatch, "bob")
    bob = ttg_lab.open(db_url)
    assert bob.user.username == "bob"
    bob.close()
    for claim in ("alice", "local", "carol@team.org"):
        with pytest.raises(PermissionDeniedError, match=f"acting as {claim} needs an admin; bob"):
            ttg_lab.open(db_url, user=claim)
    monkeypatch.setenv("TTG_LAB_USER", "alice")
    with pytest.raises(PermissionDeniedError, match="acting as alice needs an admin"):
        ttg_lab.open(db_url)
    assert dashboard(db_url) is None  # shown the refusal instead of alice's work
    monkeypatch.delenv("TTG_LAB_USER")
    escalate = ["--db", db_url, "--user", "local", "users", "role", "bob", "admin"]
    result = CliRunner().invoke(main, escalate)
    assert result.exit_code == 1 and "acting as local needs an admin; bob" in result.output
    roles = team["admin"].users.list().set_index("username")["role"]
    assert roles["bob"] == "user" and "carol" not in roles

    team["admin"].users.set_role("bob", "admin")
    as_alice = ttg_lab.open(db_url, user="alice")
    assert as_alice.user.username == "alice" and [m.name for m in as_alice.models.list()] == [
        "momentum"
    ]
    as_alice.close()


def test_without_the_hubs_token_jupyterhub_user_is_only_a_claim(
    team: dict[str, Lab], db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """JUPYTERHUB_USER without the Hub's token is a claim like --user: the local admin
    may make it, an ordinary user may not (a demoted local admin neither)."""
    monkeypatch.setenv("JUPYTERHUB_USER", "alice")
    as_alice = ttg_lab.open(db_url)
    assert as_alice.user.username == "alice"
    as_alice.close()
    team["admin"].users.set_role("alice", "admin")
    team["admin"].users.set_role("local", "user")
    with pytest.raises(PermissionDeniedError, match="acting as alice needs an admin; local"):
        ttg_lab.open(db_url)


def test_user_commands_on_the_command_line(lab: Lab, db_url: str) -> None:
    from click.testing import CliRunner

    from ttg_lab.cli import main

    def ttg(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(main, ["--db", db_url, *args])
        return result.exit_code, result.output

    assert ttg("users", "allow", "@team.org") == (
        0,
        "sign-ups from @team.org are approved as user\n",
    )
    assert ttg("users", "signup", "zoe@team.org", "Zoe")[1] == "zoe (zoe@team.org): approved\n"
    code, out = ttg("users", "signup", "yann@else.org", "Yann")
    assert "waiting for an admin's approval" in out
    code, out = ttg("--user", "yann", "models", "list")
    assert code == 1 and "yann has signed up and is waiting" in out
    assert ttg("users", "approve", "yann")[1] == "yann is approved as user\n"
    code, out = ttg("--user", "zoe", "users", "role", "zoe", "admin")
    assert code == 1 and "changing roles needs an admin; zoe is a user" in out
    code, out = ttg("users", "list")
    assert code == 0 and "zoe@team.org" in out and "yann@else.org" in out


def test_a_batch_runs_as_the_user_who_started_it(
    team: dict[str, Lab], db_url: str, tmp_path: Path
) -> None:
    from ttg_lab.batch.executors import LocalExecutor
    from ttg_lab.batch.experiment import parse_experiment
    from ttg_lab.batch.runner import BatchRunner

    spec = parse_experiment(
        {
            "name": "alice-batch",
            "concurrency": 1,
            "base": {"mode": "daily", "path": "direct", **PERIOD},
            "grid": {"ai_model_id": ["baseline/cash"]},
        }
    )
    summary = BatchRunner(spec, db_url, tmp_path, LocalExecutor(), user="alice").run()
    [result] = summary.results
    assert result["status"] == "done", result
    run_id = int(result["result"]["run_id"])
    assert team["alice"].run(run_id).status == "completed"
    with pytest.raises(NotFoundError):
        team["bob"].run(run_id)
    # and a rerun of it is hers too (it used to go to whoever the environment named)
    from ttg_lab.batch.rerun import rerun

    again = rerun(team["alice"], run_id)
    assert again["identical"] and team["alice"].run(again["run_id"]).status == "completed"
    # ... and leaves this process as it was: not claiming to be alice on her store
    assert "TTG_LAB_USER" not in os.environ and os.environ.get("TTG_LAB_DB_URL") != db_url


def test_shared_models_are_visible_read_only(team: dict[str, Lab]) -> None:
    admin, alice = team["admin"], team["alice"]
    house = admin.models.create("house momentum", ai_model_id="baseline/momentum")
    run = admin.start_run(house, path="direct", background=False, **PERIOD)
    with pytest.raises(NotFoundError):
        alice.run(run.id)
    admin.models.share(house)
    # alice reads it everywhere: models, runs, ledger, metrics, analyst, leaderboard
    assert "house-momentum" in [m.signature for m in alice.models.list()]
    assert "house-momentum" in set(alice.runs().table()["model"])
    assert len(alice.run(run.id).ledger()) == len(run.ledger())
    mine, theirs = alice.run(run.id).metrics(), admin.run(run.id).metrics()
    assert mine["total_return"] == theirs["total_return"]
    assert alice.analyst(run.id).ask("How did it do?").text
    assert set(alice.leaderboard()["model"]) == {"momentum", "house-momentum"}
    assert set(ReasoningController(alice).model_choices) == {"house-momentum", "momentum"}
    # ... and changes nothing of it
    refused: list[Callable[[], Any]] = [
        lambda: alice.models.update(house.id, description="mine"),
        lambda: alice.models.delete(house.id),
        lambda: alice.models.share(house.id, False),
        lambda: alice.rules.add(house.id, "cap", {"max_position_pct": 10}),
        lambda: alice.start_run(house.id, path="direct", background=False, **PERIOD),
        lambda: alice.run(run.id).resume(),
    ]
    for attempt in refused:
        with pytest.raises(PermissionDeniedError, match="shared with you read-only"):
            attempt()
    assert admin.models.get(house.id).description == house.description
    panel = ModelsController(alice)
    panel.select("house-momentum")
    assert not panel.toggle_share() and "shared with you read-only" in panel.error
    panel = ModelsController(admin)
    panel.select("house-momentum")
    assert panel.toggle_share() and panel.message == "house-momentum is private again"
    with pytest.raises(NotFoundError):
        alice.run(run.id)
