"""Provider presets: an ai_model_id's prefix picks a local server preset (no key, price 0
known, the rest of the id sent as the model name) wherever ids are validated (API, CLI,
batch files), other ids keep their meaning; a model's own prompt template is checked
when the model is made; the default prompt stays byte for byte what runs recorded."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support.openai_server import OpenAIStubServer, Text

from ttg_lab import options
from ttg_lab.batch.experiment import ExperimentError, parse_experiment
from ttg_lab.errors import ValidationError
from ttg_lab.lab import Lab
from ttg_lab.llm.prompt import PROMPT_VERSION
from ttg_lab.llm.providers import (
    DEFAULT_MAX_TOKENS,
    PROVIDERS,
    llm_settings,
    make_chat_model,
    provider_of,
    run_parameters,
)

LOCAL_IDS = {
    "ollama/qwen2.5:7b": ("ollama", "qwen2.5:7b", "http://127.0.0.1:11434/v1"),
    "vllm/Qwen/Qwen2.5-7B-Instruct": (
        "vllm",
        "Qwen/Qwen2.5-7B-Instruct",
        "http://127.0.0.1:8000/v1",
    ),
    "lmstudio/qwen2.5-7b-instruct": ("lmstudio", "qwen2.5-7b-instruct", "http://127.0.0.1:1234/v1"),
    "llamacpp/any.gguf": ("llamacpp", "any.gguf", "http://127.0.0.1:8080/v1"),
    "local/smollm2": ("local", "smollm2", "http://127.0.0.1:8181/v1"),
}


@pytest.mark.parametrize("ai_model_id", sorted(LOCAL_IDS))
def test_a_local_prefix_picks_its_preset_with_no_key_and_a_known_zero_price(
    ai_model_id: str,
) -> None:
    name, served, url = LOCAL_IDS[ai_model_id]
    settings = llm_settings(ai_model_id, {})
    assert (settings.provider.name, settings.served_model, settings.base_url) == (name, served, url)
    assert settings.api_key_env is None
    assert settings.cost(1_000_000, 1_000_000) == 0.0
    client = make_chat_model(settings)  # no key in the environment, and none needed
    assert client.model_name == served


def test_a_local_model_may_be_priced_and_point_elsewhere() -> None:
    settings = llm_settings(
        "ollama/llama3.1",
        {"base_url": "http://127.0.0.1:9999/v1", "input_per_mtok": 1.0, "output_per_mtok": 2.0},
    )
    assert settings.base_url == "http://127.0.0.1:9999/v1"
    assert settings.cost(1_000_000, 1_000_000) == 3.0


def test_other_ids_keep_their_meaning() -> None:
    catalog = llm_settings("openai/gpt-5", {})
    assert catalog.provider.name == "openrouter" and catalog.served_model == "openai/gpt-5"
    assert catalog.api_key_env == "OPENROUTER_API_KEY" and catalog.input_per_mtok > 0
    with pytest.raises(ValidationError, match="'someone/unlisted' is not in the catalog"):
        llm_settings("someone/unlisted", {})
    with pytest.raises(ValidationError, match="give base_url"):
        llm_settings("openai-compatible/x", {"input_per_mtok": 0, "output_per_mtok": 0})
    with pytest.raises(ValidationError, match="not in the catalog"):
        llm_settings("openai-compatible/x", {"base_url": "http://127.0.0.1:1/v1"})


@pytest.mark.parametrize("bad", ["ollama/", "local/ ", "vllm/ x"])
def test_a_preset_prefix_without_a_model_name_is_refused_naming_the_id(bad: str) -> None:
    with pytest.raises(ValidationError, match="names no model after"):
        provider_of(bad)


def test_bad_tool_modes_are_refused_naming_the_value() -> None:
    with pytest.raises(
        ValidationError, match="tool_mode must be one of auto, native, json, got 'tools'"
    ):
        llm_settings("local/smollm2", {"tool_mode": "tools"})
    with pytest.raises(ValidationError, match="tool_choice must be one of required, auto"):
        llm_settings("local/smollm2", {"tool_choice": "any"})


def test_options_list_the_providers_and_tool_modes() -> None:
    assert options.llm_providers() == PROVIDERS.names()
    assert set(options.llm_providers()) >= {
        "openrouter",
        "openai-compatible",
        "ollama",
        "vllm",
        "lmstudio",
        "llamacpp",
        "local",
    }
    assert options.tool_modes() == ("auto", "native", "json")


def test_a_new_run_records_its_answer_budget_and_tool_mode_an_old_one_keeps_its_own() -> None:
    new = run_parameters("local/smollm2", {})
    assert new["max_tokens"] == DEFAULT_MAX_TOKENS and new["tool_mode"] == "auto"
    assert run_parameters("local/smollm2", {"max_tokens": 64})["max_tokens"] == 64
    old = llm_settings("openai/gpt-5", {"max_tokens": None})  # a snapshot from before
    assert "max_tokens" not in old.sampling and old.tool_mode == "native" and not old.switches_mode
    assert llm_settings("local/smollm2", new).tool_mode == "json"  # the local preset prefers json
    assert llm_settings("ollama/x", new).tool_mode == "native"


def test_every_face_accepts_local_ids(lab: Lab, db_url: str, tmp_path: Path) -> None:
    model = lab.models.create("local one", ai_model_id="ollama/qwen2.5:7b")
    assert model.ai_model_id == "ollama/qwen2.5:7b"
    assert "local/smollm2" in lab.models.available_ai_models()
    experiment = parse_experiment(
        {"name": "local", "grid": {"ai_model_id": ["local/smollm2", "vllm/Qwen/Qwen2.5-7B"]}}
    )
    assert len(experiment.runs) == 2
    with pytest.raises(ExperimentError, match="names no model after ollama/"):
        parse_experiment({"name": "bad", "grid": {"ai_model_id": ["ollama/"]}})
    cli = Path(sys.executable).parent / "ttg-lab"
    done = subprocess.run(
        [str(cli), "models", "create", "cli local", "--ai-model", "lmstudio/qwen2.5-7b"],
        capture_output=True,
        text=True,
        env={**os.environ, "TTG_LAB_DB_URL": db_url},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert lab.models.get("cli-local").ai_model_id == "lmstudio/qwen2.5-7b"


def test_an_unknown_prompt_placeholder_is_refused_when_the_model_is_made(lab: Lab) -> None:
    with pytest.raises(ValidationError, match=r"unknown placeholder \{cahs\}"):
        lab.models.create(
            "templated", ai_model_id="local/smollm2", parameters={"prompt_template": "{cahs}"}
        )
    with pytest.raises(ValidationError, match=r"placeholder \{cash\} takes no format"):
        lab.models.create(
            "templated", ai_model_id="local/smollm2", parameters={"prompt_template": "{cash:>9}"}
        )


def test_a_models_own_template_is_its_system_prompt(
    lab: Lab, openai_stub: OpenAIStubServer
) -> None:
    template = "Trader {name}. {time}. Cash {cash}; holding {positions}.\n{prices}\n{{json}}"
    openai_stub.reset(lambda _r: Text('{"actions": [], "final": "nothing <FINISH_SIGNAL>"}'))
    params: dict[str, Any] = {"base_url": openai_stub.base_url, "prompt_template": template}
    model = lab.models.create("templated", ai_model_id="local/smollm2", parameters=params)
    run = lab.start_run(model, start="2025-07-01", end="2025-07-01")
    assert run.wait(60) == "completed", run.info.error
    system = openai_stub.requests[0].messages[0]["content"]
    assert system.startswith("Trader templated. 2025-07-01. Cash 10000.00; holding none.\nAAPL: ")
    assert "{json}" in system


def test_a_custom_template_is_recorded_by_its_content_hash(
    lab: Lab, openai_stub: OpenAIStubServer
) -> None:
    openai_stub.reset(lambda _r: Text('{"actions": [], "final": "nothing <FINISH_SIGNAL>"}'))
    template = "Trader {name}. Cash {cash}.\n{prices}"
    versions = []
    for name, own in [("custom a", template), ("custom b", template), ("custom c", template + "!")]:
        params: dict[str, Any] = {"base_url": openai_stub.base_url, "prompt_template": own}
        model = lab.models.create(name, ai_model_id="local/smollm2", parameters=params)
        run = lab.start_run(model, start="2025-07-01", end="2025-07-01", background=False)
        assert run.status == "completed", run.info.error
        versions.append(run.info.snapshot.prompt_version)
    digest = hashlib.sha256(template.encode()).hexdigest()[:12]
    assert versions[0] == versions[1] == f"custom-{digest}"  # same prompt, same version
    assert versions[2] is not None and versions[2].startswith("custom-")
    assert versions[2] != versions[0]
    plain = lab.models.create(
        "default prompt", ai_model_id="local/smollm2", parameters={"base_url": openai_stub.base_url}
    )
    run = lab.start_run(plain, start="2025-07-01", end="2025-07-01", background=False)
    assert run.info.snapshot.prompt_version == PROMPT_VERSION


def test_the_models_panel_takes_a_local_id_it_does_not_list(lab: Lab) -> None:
    from widgets.models import ModelsController, view

    ctl = ModelsController(lab)
    panel = view(ctl)
    ctl.new()
    ctl.name, ctl.initial_cash, ctl.parameters = "panel local", 10_000.0, "{}"
    ctl.ai_model_id = "vllm/Qwen/Qwen2.5-7B-Instruct"  # not among the listed ids
    boxes = [c for c in _widgets(panel) if getattr(c, "description", "") == "AI model"]
    assert [b.value for b in boxes] == ["vllm/Qwen/Qwen2.5-7B-Instruct"]
    assert ctl.save(), ctl.error
    assert lab.models.get("panel-local").ai_model_id == "vllm/Qwen/Qwen2.5-7B-Instruct"


def _widgets(root: Any) -> list[Any]:
    found = [root]
    for child in getattr(root, "children", ()):
        found += _widgets(child)
    return found
