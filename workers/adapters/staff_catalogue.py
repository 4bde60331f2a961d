"""The HSA catalogue: names and titles of staff, names of units (clinics)."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Literal

from workers.adapters.population import bucket
from workers.hsa import is_hsa_id

SignatureSetting = Literal["personal", "clinic"]


@dataclass(frozen=True)
class StaffMember:
    """A member of staff; ``signature`` is their personal setting for how to sign messages."""

    hsa_id: str
    name: str
    title: str
    signature: SignatureSetting = "personal"


@dataclass(frozen=True)
class Unit:
    """A care unit (mottagning)."""

    hsa_id: str
    name: str


class StaffCatalogue(abc.ABC):
    """Looks staff and units up by HSA-id."""

    @abc.abstractmethod
    def staff(self, hsa_id: str) -> StaffMember | None:
        """The member of staff, or ``None`` if the catalogue does not know the id."""

    @abc.abstractmethod
    def unit(self, hsa_id: str) -> Unit | None:
        """The unit, or ``None`` if the catalogue does not know the id."""


_GIVEN = [
    "Anna",
    "Erik",
    "Maria",
    "Lars",
    "Karin",
    "Johan",
    "Eva",
    "Per",
    "Sara",
    "Ali",
    "Fatima",
    "Mikael",
    "Elin",
    "Nils",
    "Leila",
    "Oskar",
]
_FAMILY = [
    "Andersson",
    "Johansson",
    "Karlsson",
    "Nilsson",
    "Eriksson",
    "Larsson",
    "Olsson",
    "Persson",
    "Svensson",
    "Gustafsson",
    "Lindberg",
    "Hassan",
    "Berg",
    "Holm",
]
_TITLES = [
    "Sjuksköterska",
    "Distriktssköterska",
    "Läkare",
    "Specialistläkare",
    "Undersköterska",
    "Fysioterapeut",
    "Barnmorska",
    "Kurator",
]
_UNIT_KINDS = [
    "Vårdcentral",
    "Hälsocentral",
    "Barnmorskemottagning",
    "Ungdomsmottagning",
    "Rehabmottagning",
    "Hudmottagningen",
]
_PLACES = [
    "Norrmalm",
    "Centrum",
    "Backa",
    "Söder",
    "Hagalund",
    "Ekeby",
    "Sjöstaden",
    "Älvsby",
    "Kungsbacka",
    "Gamlestaden",
]


class SimulatedStaffCatalogue(StaffCatalogue):
    """A deterministic catalogue: every well-formed HSA-id is somebody; ids ending in
    ``-UNKNOWN``, and anything that is not a whole HSA-id, are not. One in ten members of
    staff signs with the clinic's name."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def staff(self, hsa_id: str) -> StaffMember | None:
        if not is_hsa_id(hsa_id) or hsa_id.upper().endswith("-UNKNOWN"):
            return None
        b = bucket(self.seed, hsa_id, 1_000_000)
        name = f"{_GIVEN[b % len(_GIVEN)]} {_FAMILY[(b // 100) % len(_FAMILY)]}"
        title = _TITLES[(b // 10_000) % len(_TITLES)]
        signature: SignatureSetting = "clinic" if b % 10 == 0 else "personal"
        return StaffMember(hsa_id, name, title, signature)

    def unit(self, hsa_id: str) -> Unit | None:
        if not is_hsa_id(hsa_id) or hsa_id.upper().endswith("-UNKNOWN"):
            return None
        b = bucket(self.seed, hsa_id, 1_000_000)
        return Unit(hsa_id, f"{_UNIT_KINDS[b % len(_UNIT_KINDS)]} {_PLACES[(b // 10) % 10]}")
