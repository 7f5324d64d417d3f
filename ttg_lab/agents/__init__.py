"""Agents: policies (the shipped baselines and your own) and LLMs, acting only through
the tools. Importing the package registers the shipped baselines."""

from ttg_lab.agents import baselines  # noqa: F401  (registers the shipped policies)
from ttg_lab.agents.base import DirectAgent, baseline_ids
from ttg_lab.agents.factory import AgentRecipe, prepare_agent, validate_agent
from ttg_lab.agents.policy import Decision, MarketView, Order, Policy, register_policy

__all__ = [
    "AgentRecipe",
    "Decision",
    "DirectAgent",
    "MarketView",
    "Order",
    "Policy",
    "baseline_ids",
    "prepare_agent",
    "register_policy",
    "validate_agent",
]
