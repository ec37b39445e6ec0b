"""Drawing the residents of a region: neighbourhood, latent persona, and the noisy attributes it drives."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from uplift.data.vocabulary import EDUCATION, EMPLOYMENT, GENDERS, INCOME_BANDS, SECTORS
from uplift.specs.region import RegionSpec

__all__ = ["Population", "draw_population", "person_id_codes", "person_id_labels", "AUDIENCE_COLUMNS"]

AUDIENCE_COLUMNS = (
    "person_id",
    "age",
    "gender",
    "municipality",
    "neighbourhood",
    "employment",
    "sector",
    "education",
    "income_band",
    "migration_background",
    "has_children",
)
_JOBLESS = ("unemployed", "student")
_ID_SPACE = 10**10


@dataclass(frozen=True)
class Population:
    """The simulated residents.

    Attributes
    ----------
    audience : DataFrame with the columns of the audience contract, one row per person.
    persona : ndarray of str, the latent persona of each row of ``audience``.
    deprivation : ndarray of float, the deprivation (0-1) of each person's neighbourhood.
    """

    audience: pd.DataFrame = field(repr=False)
    persona: np.ndarray = field(repr=False)
    deprivation: np.ndarray = field(repr=False)

    def __len__(self) -> int:
        return len(self.audience)

    def attributes(self) -> pd.DataFrame:
        """The audience plus ``persona`` and ``deprivation``: what declared conditions may refer to."""
        return self.audience.assign(persona=self.persona, deprivation=self.deprivation)


def _draw_rows(probabilities: np.ndarray, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """For each entry of ``rows`` draw a column index from that row of ``probabilities`` (rows sum to 1)."""
    cumulative = np.cumsum(probabilities, axis=1)
    cumulative[:, -1] = 1.0
    u = rng.random(len(rows))
    return (u[:, None] >= cumulative[rows]).sum(axis=1)


def _level_matrix(spec: RegionSpec, attribute: str, levels: tuple[str, ...]) -> np.ndarray:
    """Rows = personas (declaration order), columns = ``levels``; each row normalised to sum 1."""
    matrix = np.array(
        [[getattr(p, attribute).get(level, 0.0) for level in levels] for p in spec.personas.values()], dtype=float
    )
    return matrix / matrix.sum(axis=1, keepdims=True)


def person_id_codes(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` unique numbers below 10**10 in random order, the codes of :func:`person_id_labels`."""
    return rng.choice(_ID_SPACE, size=n, replace=False)


def person_id_labels(codes: np.ndarray) -> np.ndarray:
    """Pseudonymous ids ``p`` + 10 digits, one per code."""
    # an object array converts to pandas' str dtype far more cheaply than a fixed-width unicode array
    return np.strings.add("p", np.strings.zfill(np.asarray(codes).astype(str), 10)).astype(object)


def _person_ids(n: int, rng: np.random.Generator) -> np.ndarray:
    """Unique pseudonymous ids ``p`` + 10 digits, in random order."""
    return person_id_labels(person_id_codes(n, rng))


def draw_population(
    spec: RegionSpec, *, people: int, rng: np.random.Generator, person_ids: np.ndarray | None = None
) -> Population:
    """Draw ``people`` residents of the region described by ``spec``.

    Neighbourhoods are drawn in proportion to their residents, the persona from the declared
    shares tilted by the neighbourhood's deprivation, then every attribute from the persona's
    profile; poorer neighbourhoods shift income down and migration background up.

    Parameters
    ----------
    spec : the region.
    people : number of residents to draw (>= 1).
    rng : the random generator (consumed).
    person_ids : the ids to give the residents (a chunk of a larger world); None draws them from ``rng``, last,
        so the other attributes do not depend on it.

    Returns
    -------
    Population
    """
    hoods = [(m.name, n) for m in spec.municipalities for n in m.neighbourhoods]
    hood = _draw_neighbourhoods(hoods, people, rng)
    hood_deprivation = np.array([n.deprivation for _, n in hoods])
    deprivation = hood_deprivation[hood]
    personas = list(spec.personas.values())
    persona = _draw_personas(personas, hood, hood_deprivation, rng)
    age = _draw_ages(personas, persona, rng)
    drawn = _draw_levels(spec, persona, deprivation, rng)
    migration, children = _draw_flags(spec, personas, persona, deprivation, rng)

    def labels(values: list[str] | tuple[str, ...], codes: np.ndarray) -> pd.Series:
        return pd.Series(np.asarray(values, dtype=object)[codes], dtype="str")

    audience = pd.DataFrame(
        {
            "person_id": pd.Series(_person_ids(people, rng) if person_ids is None else person_ids, dtype="str"),
            "age": age,
            "gender": labels(GENDERS, drawn["gender"]),
            "municipality": labels([m for m, _ in hoods], hood),
            "neighbourhood": labels([n.postcode for _, n in hoods], hood),
            "employment": labels(EMPLOYMENT, drawn["employment"]),
            "sector": labels(SECTORS, drawn["sector"]),
            "education": labels(EDUCATION, drawn["education"]),
            "income_band": labels(INCOME_BANDS, drawn["income_band"]),
            "migration_background": migration,
            "has_children": children,
        },
        columns=list(AUDIENCE_COLUMNS),
    )
    persona_names = np.asarray(list(spec.personas), dtype=object)[persona]
    return Population(audience=audience, persona=persona_names, deprivation=deprivation)


# The steps of draw_population, each drawing from ``rng`` in this order (the order fixes a seed's world).
def _draw_neighbourhoods(hoods: list, people: int, rng: np.random.Generator) -> np.ndarray:
    """Per resident, its neighbourhood's position in ``hoods``, drawn in proportion to their residents."""
    residents = np.array([n.residents for _, n in hoods], dtype=float)
    return rng.choice(len(hoods), size=people, p=residents / residents.sum())


def _draw_personas(personas: list, hood: np.ndarray, hood_deprivation: np.ndarray,
                   rng: np.random.Generator) -> np.ndarray:
    """Per resident, its persona's position: the declared shares tilted by the neighbourhood's deprivation."""
    shares = np.array([p.share for p in personas])
    tilts = np.array([p.deprivation_tilt for p in personas])
    by_hood = shares[None, :] * np.exp(tilts[None, :] * hood_deprivation[:, None])
    by_hood /= by_hood.sum(axis=1, keepdims=True)
    return _draw_rows(by_hood, hood, rng)


def _draw_ages(personas: list, persona: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Per resident, a whole age from its persona's triangular distribution (min, mode, max)."""
    lo = np.array([p.age.min for p in personas], dtype=float)[persona]
    mode = np.array([p.age.mode for p in personas], dtype=float)[persona]
    hi = np.array([p.age.max for p in personas], dtype=float)[persona]
    return np.minimum(np.floor(rng.triangular(lo, mode + 0.5, hi + 1.0)), hi).astype(np.int64)


def _draw_levels(spec: RegionSpec, persona: np.ndarray, deprivation: np.ndarray,
                 rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Per resident, the code of its gender, employment, sector (none without a job), education and income band
    (shifted one band down with a chance that grows with deprivation)."""
    drawn = {
        name: _draw_rows(_level_matrix(spec, name, levels), persona, rng)
        for name, levels in (
            ("gender", GENDERS),
            ("employment", EMPLOYMENT),
            ("sector", SECTORS),
            ("education", EDUCATION),
            ("income_band", INCOME_BANDS),
        )
    }
    jobless = np.isin(np.asarray(EMPLOYMENT)[drawn["employment"]], _JOBLESS)
    drawn["sector"] = np.where(jobless, SECTORS.index("none"), drawn["sector"])
    downshift = rng.random(len(persona)) < spec.deprivation.income_downshift * deprivation
    drawn["income_band"] = np.where(downshift, np.maximum(drawn["income_band"] - 1, 0), drawn["income_band"])
    return drawn


def _draw_flags(spec: RegionSpec, personas: list, persona: np.ndarray, deprivation: np.ndarray,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per resident, a migration background (likelier with deprivation) and children, from its persona's rates."""
    p_migration = np.array([p.migration_background for p in personas])[persona]
    p_migration = 1.0 - (1.0 - p_migration) * (1.0 - spec.deprivation.migration_lift * deprivation)
    migration = rng.random(len(persona)) < p_migration
    children = rng.random(len(persona)) < np.array([p.has_children for p in personas])[persona]
    return migration, children
