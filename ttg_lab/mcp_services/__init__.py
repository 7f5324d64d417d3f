"""MCP services (Math, Search, Trade, Price): built from the tool registry, served in
memory for runs inside a process and over streamable HTTP on 127.0.0.1 for others."""
