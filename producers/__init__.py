"""What integration teams and operators use to put work on the queues, and the CLI."""

import time as _time

STARTED = _time.monotonic()
"""When this process began (as near as Python code can tell: the first import of ``producers``):
``omvant worker``'s startup timeout counts from here, imports and all."""
