"""Where each page lives. A run id may hold any character, so it is always the path's last part."""

from __future__ import annotations

from urllib.parse import quote

__all__ = ["act_url", "api_run_url", "diagram_url", "journal_url", "live_url", "run_url", "saga_diagram_url"]


def _part(text: str) -> str:
    return quote(text, safe="")


def run_url(run_id: str) -> str:
    """The run's page."""
    return f"/runs/{_part(run_id)}"


def live_url(run_id: str) -> str:
    """The part of the run's page that refreshes while it runs."""
    return f"/live/{_part(run_id)}"


def journal_url(run_id: str) -> str:
    """The run's journal table alone."""
    return f"/journal/{_part(run_id)}"


def diagram_url(run_id: str, version: int = 0) -> str:
    """The run's diagram (SVG); ``version`` changes when the journal grows, so the browser fetches it anew."""
    return f"/diagram/{_part(run_id)}?v={version}"


def saga_diagram_url(run_id: str) -> str:
    """The diagram of the saga a run ran, without the run's state."""
    return f"/saga-diagram/{_part(run_id)}"


def act_url(action: str, run_id: str) -> str:
    """The confirmation page of an action on a run (its form posts to the same address)."""
    return f"/act/{_part(action)}/{_part(run_id)}"


def api_run_url(run_id: str) -> str:
    """The run as JSON."""
    return f"/api/runs/{_part(run_id)}"
