from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    """The current instant, timezone-aware in UTC. Never use naive datetimes in Allo."""
    return datetime.now(UTC)
