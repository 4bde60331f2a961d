"""SMS quiet hours: a notification asked for at night waits for the morning, it is never dropped.

The window is local time in the deployment's zone (``Settings.timezone``), e.g. ``21:00-08:00``
Europe/Stockholm; a window may run over midnight. Daylight-saving changes are the zone's.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class QuietHours:
    """A daily window of local time in which SMS are not sent."""

    start: dt.time
    end: dt.time
    zone: ZoneInfo

    @classmethod
    def parse(cls, window: str, zone: str) -> QuietHours | None:
        """``"21:00-08:00"`` in ``zone``; an empty window means no quiet hours."""
        if not window:
            return None
        start, end = (dt.time.fromisoformat(part) for part in window.split("-", 1))
        return cls(start, end, ZoneInfo(zone))

    def ends_at(self, now: dt.datetime) -> dt.datetime | None:
        """When the quiet period ``now`` falls in ends (aware, UTC), or None outside it."""
        local = now.astimezone(self.zone)
        t = local.time().replace(tzinfo=None)
        if self.start == self.end:
            return None
        if self.start < self.end:
            inside = self.start <= t < self.end
            end_day = local.date()
        else:
            inside = t >= self.start or t < self.end
            end_day = local.date() + dt.timedelta(days=1) if t >= self.start else local.date()
        if not inside:
            return None
        end = dt.datetime.combine(end_day, self.end, tzinfo=self.zone)
        return end.astimezone(dt.UTC)
