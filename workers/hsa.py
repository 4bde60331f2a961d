"""HSA-ids (units and staff, e.g. ``SE2321000016-ABCD``), checked as whole strings.

``re.match`` with ``$`` lets a trailing newline through (``$`` matches before it), so a
``--clinic $'SE2321000016-VC01\\n'`` would name a unit that does not exist; ``fullmatch`` does not.
"""

from __future__ import annotations

import re

HSA_ID = re.compile(r"SE[0-9]{10}-[A-Za-z0-9]{1,31}", flags=re.ASCII)
"""The same rule as the contracts' ``HsaId`` (there checked by pydantic, whose ``$`` is the
end of the text), at most 48 characters."""


def is_hsa_id(value: object) -> bool:
    """Whether ``value`` is a whole HSA-id: nothing before, after or inside it."""
    return isinstance(value, str) and len(value) <= 48 and HSA_ID.fullmatch(value) is not None
