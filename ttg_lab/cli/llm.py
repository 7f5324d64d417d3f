"""``ttg-lab llm``: serve a local model (llama.cpp) on 127.0.0.1, show it, stop it."""

from __future__ import annotations

import sys

import click
from rich.text import Text

from ttg_lab.cli.context import LabContext, pass_ctx
from ttg_lab.cli.output import clear_errors, console
from ttg_lab.config import resolve_settings
from ttg_lab.llm.server import (
    DEFAULT_CTX,
    DEFAULT_PORT,
    DEFAULT_THREADS,
    DEFAULT_WAIT,
    KNOWN_MODELS,
    ModelServer,
    ServerConfig,
    ServerRecord,
)


@click.group()
def llm() -> None:
    """A local OpenAI-compatible model server (llama.cpp) for `local/...` models."""


def _server(obj: LabContext) -> ModelServer:
    return ModelServer(resolve_settings(obj.db_url))


def _describe(record: ServerRecord) -> str:
    config = record.config
    return (
        f"{config.name} ({config.gguf}) at {record.url}, pid {record.process.pid}, "
        f"{config.threads} threads, context {config.ctx}, "
        f"chat format {config.chat_format or 'from the GGUF file'}, "
        f"started {record.started_at:%Y-%m-%d %H:%M:%S} UTC"
    )


def _ready(record: ServerRecord) -> None:
    console.print(f"serving {_describe(record)}", highlight=False, markup=False)
    console.print(
        f"use ai_model_id {record.ai_model_id} (base URL {record.url}, no key)",
        highlight=False,
        markup=False,
    )


@llm.command("serve")
@click.argument("model", default="smollm2")
@click.option("--port", type=int, default=DEFAULT_PORT, show_default=True)
@click.option("--threads", type=int, default=None, help=f"CPU threads [default: {DEFAULT_THREADS}]")
@click.option("--ctx", type=int, default=DEFAULT_CTX, show_default=True, help="context tokens")
@click.option(
    "--chat-format",
    default=None,
    help="llama-cpp-python chat format [default: chatml-function-calling for smollm2, "
    "else the GGUF file's own template]",
)
@click.option(
    "--wait",
    type=click.FloatRange(min=1),
    default=DEFAULT_WAIT,
    show_default=True,
    help="seconds to wait for the server to answer",
)
@click.option("--foreground", is_flag=True, help="run in this terminal until Ctrl-C")
@pass_ctx
def llm_serve(
    obj: LabContext,
    model: str,
    port: int,
    threads: int | None,
    ctx: int,
    chat_format: str | None,
    wait: float,
    foreground: bool,
) -> None:
    """Serve MODEL: a GGUF file's path, or a known name (default smollm2)."""
    with clear_errors():
        config = ServerConfig.of(model, port, threads, ctx, chat_format)
        server = _server(obj)
        if foreground:
            code = server.serve_foreground(config, wait, on_ready=_ready)
            sys.exit(code)
        with console.status(Text(f"starting {config.name} on port {config.port}")):
            record = server.start(config, wait)
        _ready(record)
        console.print(
            f"log: {record.log}; stop it with `ttg-lab llm stop`", highlight=False, markup=False
        )


@llm.command("status")
@pass_ctx
def llm_status(obj: LabContext) -> None:
    """Show the local model server, if one runs (exit 1 when none does)."""
    with clear_errors():
        status = _server(obj).status()
        if status.dropped is not None:
            console.print(
                f"removed the record of a server that is gone (pid {status.dropped.pid})",
                highlight=False,
                markup=False,
            )
        if status.record is None:
            known = " or ".join(KNOWN_MODELS.names())
            console.print(
                f"no local model server runs; start one with `ttg-lab llm serve {known}` "
                "or `ttg-lab llm serve PATH.gguf`",
                highlight=False,
                markup=False,
            )
            sys.exit(1)
        state = "answering" if status.answering else "not answering (yet)"
        console.print(
            f"running, {state}: {_describe(status.record)}", highlight=False, markup=False
        )
        console.print(f"ai_model_id {status.record.ai_model_id}", highlight=False, markup=False)


@llm.command("stop")
@pass_ctx
def llm_stop(obj: LabContext) -> None:
    """Stop the local model server."""
    with clear_errors():
        record = _server(obj).stop()
        if record is None:
            console.print("no local model server was running", highlight=False)
            return
        console.print(
            f"stopped {record.config.name} at {record.url} (pid {record.process.pid})",
            highlight=False,
            markup=False,
        )
