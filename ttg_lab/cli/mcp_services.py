"""``ttg-lab mcp``: start, stop, inspect and serve the MCP services."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from ttg_lab.cli.context import LabContext, pass_ctx
from ttg_lab.cli.output import clear_errors, console, print_frame
from ttg_lab.mcp_services.manager import DEFAULT_PORTS, ServiceStatus, serve
from ttg_lab.mcp_services.names import SERVICES

if TYPE_CHECKING:
    pass


@click.group()
def mcp() -> None:
    """MCP services (math, search, trade, price) over streamable HTTP."""


def _print_services(statuses: list[ServiceStatus]) -> None:
    rows = [
        {
            "service": s.service,
            "url": s.url,
            "pid": s.pid or "",
            "state": s.state,
            "running": s.running,
            "healthy": s.healthy,
            "tools": ", ".join(s.tools),
        }
        for s in statuses
    ]
    import pandas as pd

    print_frame(pd.DataFrame(rows), "MCP services")


@mcp.command("start")
@click.argument("services", nargs=-1)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--base-port", type=int, default=None, help="ports base, base+1.. (default 8101..)")
@click.option("--token", envvar="TTG_LAB_MCP_TOKEN", default=None, help="required off 127.0.0.1")
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    help="seconds to wait for the services to answer",
)
@pass_ctx
def mcp_start(
    obj: LabContext,
    services: tuple[str, ...],
    host: str,
    base_port: int | None,
    token: str | None,
    wait: float,
) -> None:
    """Start SERVICES (default: all four) in the background and wait until they answer."""
    with clear_errors():
        manager = obj.lab().mcp
        ports = {s: base_port + i for i, s in enumerate(SERVICES)} if base_port else None
        started = manager.start(list(services) or None, host=host, ports=ports, token=token)
        names = [s.service for s in started]
        with console.status(f"waiting up to {wait:g} s for {', '.join(names)} to answer"):
            statuses = manager.wait_until_up(names, wait, token)
        _print_services(statuses)
        down = [s for s in statuses if s.state in ("stopped", "unhealthy")]
        starting = [s for s in statuses if s.state == "starting"]
        for s in down:
            console.print(
                f"[red]{s.service} is {s.state}; see its log: {s.log}[/red]", highlight=False
            )
        if starting:
            console.print(
                f"[yellow]still starting after {wait:g} s: "
                f"{', '.join(s.service for s in starting)} (a busy machine can take longer; "
                f"`ttg-lab mcp status` shows when they answer); logs: "
                f"{', '.join(str(s.log) for s in starting)}[/yellow]",
                highlight=False,
            )
        if down or starting:
            sys.exit(1)
        console.print(
            f"{len(statuses)} of {len(statuses)} healthy; clients send "
            f"'Authorization: Bearer <token>' with the token in {manager.token_path}",
            highlight=False,
        )


@mcp.command("stop")
@click.argument("services", nargs=-1)
@pass_ctx
def mcp_stop(obj: LabContext, services: tuple[str, ...]) -> None:
    """Stop SERVICES (default: all)."""
    with clear_errors():
        stopped = obj.lab().mcp.stop(list(services) or None)
        console.print(f"stopped: {', '.join(stopped) or 'none were running'}")


@mcp.command("status")
@pass_ctx
def mcp_status(obj: LabContext) -> None:
    """Show which services run and answer their health check."""
    with clear_errors():
        _print_services(obj.lab().mcp.status())


@mcp.command("serve")
@click.argument("service", type=click.Choice(list(SERVICES)))
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=None, help="default: the service's standard port")
@click.option("--token", envvar="TTG_LAB_MCP_TOKEN", default=None)
@pass_ctx
def mcp_serve(
    obj: LabContext, service: str, host: str, port: int | None, token: str | None
) -> None:
    """Serve one SERVICE in the foreground (what `mcp start` runs)."""
    with clear_errors():
        lab = obj.lab()
        serve(service, lab.config.db_url, host, port or DEFAULT_PORTS[service], token, lab.user)
