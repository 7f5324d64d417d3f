"""``ttg-lab chat``: talk to the strategy analyst about a run."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ttg_lab.cli.context import LabContext, pass_ctx
from ttg_lab.cli.output import clear_errors, console

if TYPE_CHECKING:
    pass


@click.command("chat")
@click.argument("run_id", type=int)
@click.option("--question", "-q", multiple=True, help="ask and exit (repeat for several)")
@click.option("--model", default=None, help="an LLM for the analyst (default: offline)")
@pass_ctx
def chat_cmd(obj: LabContext, run_id: int, question: tuple[str, ...], model: str | None) -> None:
    """Talk to the strategy analyst about RUN_ID (an empty line or Ctrl-D ends)."""
    with clear_errors():
        analyst = obj.lab().analyst(run_id, model=model)
        console.print(f"{analyst.mode} analyst on run {run_id}; conversation {analyst.session_id}")
        questions = iter(question) if question else None
        while True:
            if questions is not None:
                text = next(questions, "")
            else:
                try:
                    text = input("you> ")
                except EOFError:
                    text = ""
            if not text.strip():
                break
            for piece in analyst.ask_stream(text):
                console.print(piece, end="", highlight=False, markup=False)
            console.print()
            for suggestion in analyst.last_answer.suggestions:
                console.print(
                    f"  suggestion {suggestion.id}: {suggestion.name} "
                    f"{suggestion.parameters} (effect {suggestion.effect:+,.2f})"
                )
