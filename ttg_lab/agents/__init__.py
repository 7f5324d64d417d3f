"""Agents: offline baselines now, LLM agents through the same tools later."""

from ttg_lab.agents.base import Agent, DirectAgent, baseline_ids, make_agent

__all__ = ["Agent", "DirectAgent", "baseline_ids", "make_agent"]
