"""Agents: offline baselines and LLMs, acting only through the tools."""

from ttg_lab.agents.base import Agent, DirectAgent, baseline_ids
from ttg_lab.agents.factory import AgentRequest, build_agent, validate_agent

__all__ = ["Agent", "AgentRequest", "DirectAgent", "baseline_ids", "build_agent", "validate_agent"]
