"""The one error of scenario declarations."""

from __future__ import annotations

__all__ = ["ScenarioError"]


class ScenarioError(ValueError):
    """A scenario declaration is inconsistent; the message names the scenario and the field."""
