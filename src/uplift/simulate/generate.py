"""Drawing a region from a family of regions: same family and seed, same region.

:func:`generate_region` is pure: each part of the region (places, personas, lifts, interactions,
channels, base rates, the attributes handed over) comes from its own random stream of the seed, so a
change to how one part is drawn leaves the others as they were. Every drawn number lies within its
declared range of the :class:`~uplift.specs.family.FamilySpec` (rounded to a readable precision,
never past a bound).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import ValidationError

from uplift.data.vocabulary import OPTIONAL_ATTRIBUTES, SECTORS
from uplift.errors import SpecError
from uplift.specs.family import FamilySpec, GeographyRanges, PersonaRanges
from uplift.specs.region import OTHER_PERSONA, RegionSpec

__all__ = ["generate_region", "RANDOM_PREFIX"]

RANDOM_PREFIX = "random:"
"""``--region random:SEED`` draws the region from the family with that seed."""

# one random stream per part of the region
_GEOGRAPHY, _PERSONAS, _LIFTS, _INTERACTIONS, _CHANNELS, _BASELINE, _ATTRIBUTES, _DEPRIVATION, _WEAR_OUT = range(9)


def _stream(seed: int, part: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, part]))


def _uniform(rng: np.random.Generator, bounds: tuple[float, float], digits: int) -> float:
    """A uniform draw in ``bounds``, rounded to ``digits`` decimals and kept within the bounds."""
    low, high = bounds
    return float(np.clip(round(float(rng.uniform(low, high)), digits), low, high))


def _integer(rng: np.random.Generator, bounds: tuple[int, int]) -> int:
    return int(rng.integers(bounds[0], bounds[1] + 1))


def generate_region(spec: FamilySpec, seed: int) -> RegionSpec:
    """Draw one region of the family ``spec``.

    Parameters
    ----------
    spec : the family (ranges of every drawn quantity).
    seed : non-negative integer; the same seed gives the same region.

    Returns
    -------
    RegionSpec named ``<family>-<seed>``.

    Raises
    ------
    SpecError
        ``seed`` is not a non-negative integer, or the drawn region is not valid.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise SpecError(f"generate_region: seed must be an integer >= 0, got {seed!r}")
    seed = int(seed)
    personas, natural = _personas(spec.personas, _stream(seed, _PERSONAS))
    raw: dict[str, Any] = {
        "name": f"{spec.name}-{seed}",
        "description": f"Drawn from the family {spec.name!r} with seed {seed}.",
        "attribution_days": spec.attribution_days,
        "registration_delay_days": spec.registration_delay_days,
        "municipalities": _municipalities(spec.geography, _stream(seed, _GEOGRAPHY)),
        "deprivation": _deprivation(spec, _stream(seed, _DEPRIVATION)),
        "personas": personas,
        "baseline": _baseline(spec, _stream(seed, _BASELINE)),
        "messages": _messages(spec, natural, _stream(seed, _LIFTS), _stream(seed, _INTERACTIONS)),
        "channels": _channels(spec, _stream(seed, _CHANNELS)),
        "wear_out": _uniform(_stream(seed, _WEAR_OUT), spec.wear_out, 2),
        "min_relative_lift": spec.min_relative_lift,
        "max_probability": spec.max_probability,
        "funnel": _funnel(spec, list(personas)),
        "waves": spec.waves.model_dump(),
        "given_attributes": _given_attributes(spec, _stream(seed, _ATTRIBUTES)),
    }
    try:
        return RegionSpec.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors())
        raise SpecError(f"family {spec.name!r}, seed {seed}: the drawn region is not valid: {problems}") from None


def _municipalities(geo: GeographyRanges, rng: np.random.Generator) -> list[dict[str, Any]]:
    """Municipalities with distinct names and postcode prefixes; neighbourhoods around the town's deprivation."""
    count = _integer(rng, geo.municipalities)
    names = rng.choice(np.asarray(list(dict.fromkeys(geo.names)), dtype=object), size=count, replace=False)
    low, high = geo.postcode_prefix
    prefixes = rng.choice(np.arange(low, high + 1), size=count, replace=False)
    out = []
    for name, prefix in zip(names, prefixes, strict=True):
        centre = _uniform(rng, geo.deprivation, 2)
        hoods = _integer(rng, geo.neighbourhoods)
        suffixes = np.sort(rng.choice(100, size=hoods, replace=False))
        neighbourhoods = []
        for suffix in suffixes:
            residents = int(np.clip(round(_integer(rng, geo.residents), -3), *geo.residents))
            spread = rng.uniform(-geo.deprivation_spread, geo.deprivation_spread)
            deprivation = float(np.clip(round((centre + spread) * 20) / 20, 0.0, 1.0))
            neighbourhoods.append({"postcode": f"{prefix:02d}{suffix:02d}", "residents": residents,
                                   "deprivation": deprivation})
        out.append({"name": str(name), "neighbourhoods": neighbourhoods})
    return out


def _deprivation(spec: FamilySpec, rng: np.random.Generator) -> dict[str, float]:
    return {"income_downshift": _uniform(rng, spec.deprivation.income_downshift, 2),
            "migration_lift": _uniform(rng, spec.deprivation.migration_lift, 2)}


def _personas(ranges: PersonaRanges, rng: np.random.Generator) -> tuple[dict[str, Any], dict[str, str | None]]:
    """The drawn archetypes (in pool order) and ``other``; and each archetype's natural message."""
    pool = list(ranges.archetypes)
    count = _integer(rng, ranges.count)
    chosen = sorted(rng.choice(len(pool), size=count, replace=False))
    personas: dict[str, Any] = {}
    natural: dict[str, str | None] = {}
    for i in chosen:
        name, archetype = pool[i], ranges.archetypes[pool[i]]
        personas[name] = archetype.as_persona(
            share=_uniform(rng, ranges.share, 3),
            deprivation_tilt=_uniform(rng, ranges.deprivation_tilt, 2),
            baseline=_uniform(rng, ranges.baseline, 2),
        ).model_dump()
        natural[name] = archetype.natural_message
    rest = 1.0 - sum(p["share"] for p in personas.values())
    personas[OTHER_PERSONA] = ranges.other.as_persona(
        share=round(rest, 3), deprivation_tilt=0.0, baseline=_uniform(rng, ranges.other_baseline, 2)
    ).model_dump()
    return personas, natural


def _persona_lifts(spec: FamilySpec, natural: str | None, rng: np.random.Generator) -> dict[str, float]:
    """One archetype's lift per message: a best message, a few that also work, the rest cold or off-putting."""
    lifts = spec.lifts
    messages = list(spec.messages)
    if natural is not None and rng.random() < spec.personas.natural_best:
        best = natural
    else:
        best = str(rng.choice([m for m in messages if m != natural]))
    rest = [m for m in messages if m != best]
    seconds = set(rng.choice(rest, size=min(_integer(rng, lifts.seconds), len(rest)), replace=False).tolist())
    out = {best: _uniform(rng, lifts.best, 2)}
    for m in rest:
        if m in seconds:
            out[m] = _uniform(rng, lifts.second, 2)
        elif rng.random() < lifts.put_off_share:
            out[m] = _uniform(rng, lifts.put_off, 2)
        else:
            out[m] = _uniform(rng, lifts.cold, 2)
    return out


def _interactions(spec: FamilySpec, rng: np.random.Generator) -> dict[str, list[dict[str, Any]]]:
    """Per message, the drawn adjustments: by age, and in poorer neighbourhoods (for an age group or all)."""
    ranges = spec.interactions
    messages = list(spec.messages)
    out: dict[str, list[dict[str, Any]]] = {m: [] for m in messages}

    def age_group() -> dict[str, int]:
        if rng.random() < 0.5:
            return {"age_max": _integer(rng, ranges.young)}
        return {"age_min": _integer(rng, ranges.old)}

    for _ in range(_integer(rng, ranges.age)):
        message = str(rng.choice(messages))
        out[message].append({"when": age_group(), "add": _uniform(rng, ranges.age_add, 2)})
    for _ in range(_integer(rng, ranges.neighbourhood)):
        message = str(rng.choice(messages))
        when: dict[str, Any] = {"deprivation_min": _uniform(rng, ranges.neighbourhood_from, 2)}
        if rng.random() < ranges.neighbourhood_age_share:
            when.update(age_group())
        out[message].append({"when": when, "add": _uniform(rng, ranges.neighbourhood_add, 2)})
    return out


def _messages(spec: FamilySpec, natural: dict[str, str | None], lifts_rng: np.random.Generator,
              interactions_rng: np.random.Generator) -> dict[str, Any]:
    per_persona = {p: _persona_lifts(spec, m, lifts_rng) for p, m in natural.items()}
    other = {m: _uniform(lifts_rng, spec.lifts.other, 2) for m in spec.messages}
    adjustments = _interactions(spec, interactions_rng)
    return {
        m: {
            "description": description,
            "lift": {**{p: lifts[m] for p, lifts in per_persona.items()}, OTHER_PERSONA: other[m]},
            "adjustments": adjustments[m],
        }
        for m, description in spec.messages.items()
    }


def _channels(spec: FamilySpec, rng: np.random.Generator) -> dict[str, Any]:
    """Each channel's strength, and its factors by age, by a few sectors and in poorer neighbourhoods."""
    sectors = [s for s in SECTORS if s != "none"]
    young, old = spec.interactions.young, spec.interactions.old
    out = {}
    for name, ranges in spec.channels.items():
        modifiers = [
            {"when": {"age_max": _integer(rng, young)}, "factor": _uniform(rng, ranges.young, 2)},
            {"when": {"age_min": _integer(rng, old)}, "factor": _uniform(rng, ranges.old, 2)},
        ]
        picked = rng.choice(sectors, size=_integer(rng, ranges.sectors), replace=False).tolist()
        if picked:
            modifiers.append({"when": {"sector": picked}, "factor": _uniform(rng, ranges.sector_factor, 2)})
        modifiers.append({"when": {"deprivation_min": _uniform(rng, ranges.deprivation_from, 2)},
                          "factor": _uniform(rng, ranges.deprivation, 2)})
        out[name] = {"description": ranges.description, "cost_eur": ranges.cost_eur,
                     "multiplier": _uniform(rng, ranges.multiplier, 2), "modifiers": modifiers}
    return out


def _baseline(spec: FamilySpec, rng: np.random.Generator) -> dict[str, Any]:
    ranges = spec.baseline
    return {
        "registration": _uniform(rng, ranges.registration, 5),
        "modifiers": [
            {"when": {"employment": ["unemployed"]}, "factor": _uniform(rng, ranges.unemployed, 2)},
            {"when": {"education": ["higher"]}, "factor": _uniform(rng, ranges.higher_education, 2)},
            {"when": {"age_min": 55}, "factor": _uniform(rng, ranges.over_55, 2)},
        ],
    }


def _funnel(spec: FamilySpec, personas: list[str]) -> dict[str, Any]:
    """The family's funnel rates with each present persona's own factors."""
    profiles = {**spec.personas.archetypes, OTHER_PERSONA: spec.personas.other}
    out = {}
    for event, stage in spec.funnel.items():
        factors = {p: profiles[p].funnel[event] for p in personas if event in profiles[p].funnel}
        out[event] = {**stage.model_dump(), "persona_factor": factors}
    return out


def _given_attributes(spec: FamilySpec, rng: np.random.Generator) -> list[str]:
    """All optional attributes, a random half, or none, by the family's weights."""
    weights = spec.given_attributes
    kinds = ("all", "some", "none")
    p = np.array([getattr(weights, k) for k in kinds], dtype=float)
    kind = kinds[int(rng.choice(3, p=p / p.sum()))]
    if kind == "all":
        return list(OPTIONAL_ATTRIBUTES)
    if kind == "none":
        return []
    keep = rng.random(len(OPTIONAL_ATTRIBUTES)) < 0.5
    return [a for a, k in zip(OPTIONAL_ATTRIBUTES, keep, strict=True) if k]
