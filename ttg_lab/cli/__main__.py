"""``python -m ttg_lab.cli``: how the MCP manager starts a service in its own process."""

from ttg_lab.cli import main

main()
