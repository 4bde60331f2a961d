"""The chaos suite (``omvant chaos``, ``make chaos``): a dispatch through real worker processes
on servers of its own, while they are killed, restarted and cut off; then checked at the
simulators. ``servers`` starts and breaks the servers, ``faults`` is the schedule, ``checks``
compares what the simulators received with the records, ``run`` ties them together."""
