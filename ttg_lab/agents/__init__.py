"""Agents: offline baselines and LLMs, acting only through the tools."""

from ttg_lab.agents.base import DirectAgent, baseline_ids
from ttg_lab.agents.factory import AgentRecipe, prepare_agent, validate_agent

__all__ = [
    "AgentRecipe",
    "DirectAgent",
    "baseline_ids",
    "prepare_agent",
    "validate_agent",
]
