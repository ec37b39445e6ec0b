"""Where a plan's people live: municipalities and their neighbourhoods (4-digit postcodes), with how many people.

A hand-off splits a flyer line over the neighbourhoods of its municipality in proportion to their people
and needs to know which postcodes a municipality has. The counts come from the audience (the people the
plan is for, :func:`areas_from_audience`) or, without one, from the region declaration's residents
(:func:`areas_from_region`). They are weights, never written: a neighbourhood with fewer people than the
anonymity floor is merged with the other small ones of its municipality, and with the smallest shown one
if that is still too small (:func:`print_units`), so no print run is a small neighbourhood's.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from uplift.errors import DataError, SchemaError
from uplift.handoff.utm import code

__all__ = ["AREA_COLUMNS", "PrintUnit", "areas_from_audience", "areas_from_region", "print_units"]

AREA_COLUMNS = ("municipality", "postcode", "name", "people")


@dataclass(frozen=True)
class PrintUnit:
    """A neighbourhood, or small neighbourhoods of one municipality merged, that a print run covers."""

    municipality: str
    postcodes: tuple[str, ...]
    names: tuple[str, ...]
    people: float
    merged: bool

    @property
    def code(self) -> str:
        """The unit's ``utm_term``: ``pc-2511``, or the municipality and every postcode for a merged unit."""
        return code("pc", *self.postcodes) if not self.merged else code(self.municipality, "pc", *self.postcodes)


def areas_from_audience(audience: pd.DataFrame, *, source: str = "audience") -> pd.DataFrame:
    """People per (municipality, neighbourhood) of an audience (one row per person, ``person_id``,
    ``municipality``, ``neighbourhood``)."""
    missing = [c for c in ("person_id", "municipality", "neighbourhood") if c not in audience.columns]
    if missing:
        raise SchemaError(f"{source}: missing column(s) {', '.join(missing)}; expected the audience contract "
                          "(person_id, municipality, neighbourhood)")
    people = (audience.assign(municipality=audience["municipality"].astype(str),
                              postcode=audience["neighbourhood"].astype(str))
              .groupby(["municipality", "postcode"], sort=True)["person_id"].nunique())
    out = people.rename("people").reset_index()
    clash = out.groupby("postcode")["municipality"].nunique()
    if (clash > 1).any():
        raise DataError(f"{source}: postcode(s) {', '.join(clash[clash > 1].index[:5])} lie in more than one "
                        "municipality; expected each neighbourhood in one municipality")
    out["name"] = ""
    return out[list(AREA_COLUMNS)].astype({"people": float})


def areas_from_region(region) -> pd.DataFrame:
    """Residents per (municipality, neighbourhood) of a region declaration
    (:class:`~uplift.specs.region.RegionSpec`)."""
    rows = [(m.name, n.postcode, n.name, float(n.residents)) for m in region.municipalities for n in m.neighbourhoods]
    return pd.DataFrame(rows, columns=list(AREA_COLUMNS))


def print_units(areas: pd.DataFrame, municipalities: tuple[str, ...], *, min_size: int) -> list[PrintUnit]:
    """The print units of ``municipalities``: each neighbourhood of at least ``min_size`` people alone, the
    smaller ones of a municipality together; a merged group still below ``min_size`` joins the smallest shown
    unit of its municipality, and a whole municipality below it is merged with the other such ones of the line
    (then with the line's smallest unit), so no unit has fewer than ``min_size`` people unless all of them
    together have.

    Raises
    ------
    DataError
        A municipality has no neighbourhood in ``areas``.
    """
    units: list[PrintUnit] = []
    for municipality in municipalities:
        units.extend(_municipality_units(areas, municipality, min_size))
    small = [u for u in units if u.people < min_size]
    if not small:
        return units
    shown = [u for u in units if u.people >= min_size]
    rest = _merge(small)
    if rest.people >= min_size or not shown:
        return [*shown, rest]
    smallest = min(range(len(shown)), key=lambda i: (shown[i].people, shown[i].postcodes))
    shown[smallest] = _merge([shown[smallest], rest])
    return shown


def _municipality_units(areas: pd.DataFrame, municipality: str, min_size: int) -> list[PrintUnit]:
    rows = areas[areas["municipality"] == municipality].sort_values("postcode")
    if rows.empty:
        known = ", ".join(sorted(areas["municipality"].unique())[:12])
        raise DataError(f"municipality {municipality!r} has no neighbourhoods in the areas the hand-off was given; "
                        f"known: {known}")
    units = [PrintUnit(municipality, (r.postcode,), (r.name,), float(r.people), False) for r in rows.itertuples()]
    big = [u for u in units if u.people >= min_size]
    small = [u for u in units if u.people < min_size]
    if not small:
        return big
    rest = _merge(small)
    if rest.people >= min_size or not big:
        return [*big, rest]
    smallest = min(range(len(big)), key=lambda i: (big[i].people, big[i].postcodes))
    big[smallest] = _merge([big[smallest], rest])
    return big


def _merge(units: list[PrintUnit]) -> PrintUnit:
    """One unit of ``units``' neighbourhoods (postcodes in order); named after the municipalities it spans."""
    pairs = sorted((p, n) for u in units for p, n in zip(u.postcodes, u.names, strict=True))
    municipality = " + ".join(dict.fromkeys(u.municipality for u in units))
    return PrintUnit(municipality, tuple(p for p, _ in pairs), tuple(n for _, n in pairs),
                     float(sum(u.people for u in units)), True)
