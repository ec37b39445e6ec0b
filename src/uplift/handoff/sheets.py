"""The hand-off's sheets: one per channel in the channel's own terms, the holdout per line, the UTM key and a
manifest whose totals add up to the plan.

:func:`handoff_tables` is pure (a plan's cells, the catalogue, the policy, the areas and the hand-off
declaration in; frames and a manifest out); :func:`uplift.handoff.write.write_handoff` writes them.
Spend is split to the cent by largest remainder, first over the channels, then over each channel's lines,
so the lines add up to the plan's spend rounded to the cent, and every channel to its own within a cent.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from uplift.celltargeting import ALL
from uplift.errors import DataError
from uplift.handoff.lines import apportion, plan_lines
from uplift.handoff.utm import MEDIUM, UTM_KEYS, Utm, campaign, link, utm_value
from uplift.specs.handoff import HandoffSpec
from uplift.specs.planning import CostCatalogue, PlanningPolicy

__all__ = ["HOLDOUT_FILE", "KEY_FILE", "MANIFEST_FILE", "Handoff", "handoff_tables", "sheet_name"]

HOLDOUT_FILE = "holdout.csv"
KEY_FILE = "utm_key.csv"
MANIFEST_FILE = "manifest.json"

_FILE_OF = {"ad_sets": "ad_sets", "print_run": "print_runs", "mailing": "mailings"}

_GENDERS = {"female": "female", "male": "male"}
"""Genders the platforms select on; any other value (and a merged one) is every gender."""


@dataclass(frozen=True)
class Handoff:
    """A plan's hand-off: ``sheets`` (file name -> frame, one per channel), the holdout per line, the UTM key
    (every link's parameters and the plan cells behind it) and the manifest."""

    sheets: dict[str, pd.DataFrame]
    holdout: pd.DataFrame
    key: pd.DataFrame
    manifest: dict = field(default_factory=dict)


def sheet_name(channel: str, kind: str) -> str:
    """The file of a channel's lines: ``meta_ad_sets.csv``, ``flyer_print_runs.csv``, ``email_mailings.csv``."""
    return f"{channel}_{_FILE_OF[kind]}.csv"


def handoff_tables(cells: pd.DataFrame, *, costs: CostCatalogue, policy: PlanningPolicy, spec: HandoffSpec,
                   areas: pd.DataFrame, wave: int, start: dt.date, min_size: int,
                   segments: pd.Series | list[str] | None = None, unit_lines: pd.DataFrame | None = None) -> Handoff:
    """The hand-off of a plan's ``cells`` for ``wave``, starting on ``start``.

    ``areas``: people per municipality and neighbourhood (:mod:`uplift.handoff.areas`); ``min_size``: the
    anonymity floor (no print run covers fewer people); ``segments``: every segment of the table the plan was
    made over, when ``cells`` holds only the funded ones (a merged ``other`` cell is read against them);
    ``unit_lines``: a plan's flyer lines per print unit (:attr:`uplift.allocation.PlanResult.unit_lines`), each
    handed over as one print run.
    """
    if wave < 1:
        raise DataError(f"wave: expected a wave number of 1 or more, got {wave}")
    lines = plan_lines(cells, costs=costs, areas=areas, min_size=min_size, segments=segments, unit_lines=unit_lines)
    _check_values(lines)
    total_cents = int(round(float(cells.loc[cells["contacts"] > 0, "spend"].sum()) * 100))
    lines = lines.assign(cents=_cents(lines, total_cents))
    end = start + dt.timedelta(days=spec.days - 1)
    lines["url"] = [link(spec.landing_url, _utm(r, wave)) for r in lines.itertuples()]
    lines["below_minimum"] = [_below_minimum(r, costs) for r in lines.itertuples()]
    sheets = {}
    for (channel, kind), rows in lines.groupby(["channel", "kind"], sort=True):
        sheets[sheet_name(channel, kind)] = _SHEETS[kind](rows, spec, costs.channel(channel), wave, start, end)
    holdout = _holdout(lines, policy)
    key = _key(lines, costs, wave)
    manifest = _manifest(lines, sheets, cells, total_cents, wave=wave, start=start, end=end, spec=spec,
                         policy=policy)
    return Handoff(sheets=sheets, holdout=holdout, key=key, manifest=manifest)


def _check_values(lines: pd.DataFrame) -> None:
    """Two channels, or two messages, whose names give the same UTM value could not be told apart coming back."""
    for column in ("channel", "message"):
        names = pd.Series(lines[column].unique())
        clash = names[names.map(utm_value).duplicated(keep=False)]
        if len(clash):
            raise DataError(f"{column}s {', '.join(map(repr, sorted(clash)))} give the same UTM value "
                            f"{utm_value(clash.iloc[0])!r}; rename one so that their links differ")


def _cents(lines: pd.DataFrame, total_cents: int) -> np.ndarray:
    """Spend per line in whole cents: the total over the channels, then each channel's over its lines."""
    out = np.zeros(len(lines), dtype=np.int64)
    if lines.empty:
        return out
    channels = lines.groupby("channel", sort=True)["spend"].sum()
    per_channel = dict(zip(channels.index, apportion(total_cents, channels.to_numpy()), strict=True))
    for channel, idx in lines.groupby("channel", sort=True).indices.items():
        out[idx] = apportion(int(per_channel[channel]), lines["spend"].to_numpy()[idx])
    return out


def _utm(row, wave: int) -> Utm:
    return Utm(source=utm_value(row.channel), medium=MEDIUM[row.kind], wave=wave, content=utm_value(row.message),
               term=row.line)


def _below_minimum(row, costs: CostCatalogue) -> str:
    """Why the line is smaller than the channel takes ('' when it is not)."""
    declared = costs.channel(row.channel)
    if row.kind == "print_run" and _copies(row.contacts, declared.people_per_copy) < declared.min_print_run:
        return f"fewer than {declared.min_print_run} copies"
    if row.kind != "print_run" and row.cents < round(declared.min_line_spend * 100):
        return f"less than EUR {declared.min_line_spend:,.2f}"
    return ""


def _copies(contacts: int, people_per_copy: float) -> int:
    return int(math.ceil(contacts / people_per_copy - 1e-9))


def _ages(band: str) -> tuple[int, int]:
    if band == ALL:
        return 18, 67
    lo, _, hi = band.partition("-")
    return int(lo), int(hi)


def _join(values) -> str:
    return "; ".join(str(v) for v in values if str(v) != "")


def _ad_sets(rows: pd.DataFrame, spec: HandoffSpec, declared, wave: int, start: dt.date, end: dt.date) -> pd.DataFrame:
    """Ad sets in the platform's terms: age range, gender, locations (municipalities, or their postcodes)."""
    ages = [_ages(b) for b in rows["age_band"]]
    return pd.DataFrame({
        "ad_set": [f"{campaign(wave)}_{m}_{t}" for m, t in zip(rows["message"], rows["line"], strict=True)],
        "campaign": campaign(wave), "message": rows["message"].to_numpy(),
        "creative_id": [spec.creative(m) for m in rows["message"]],
        "age_min": [a for a, _ in ages], "age_max": [b for _, b in ages],
        "gender": [_GENDERS.get(g, ALL) for g in rows["gender"]],
        "locations": [_join(m) for m in rows["municipalities"]],
        "budget_eur": rows["cents"].to_numpy() / 100, "planned_contacts": rows["contacts"].to_numpy(),
        "start_date": start.isoformat(), "end_date": end.isoformat(), "url": rows["url"].to_numpy(),
        "utm_term": rows["line"].to_numpy(), "not_targeted": [_join(n) for n in rows["not_targeted"]],
        "below_minimum": rows["below_minimum"].to_numpy(),
    })


def _print_runs(rows: pd.DataFrame, spec: HandoffSpec, declared, wave: int, start: dt.date,
                end: dt.date) -> pd.DataFrame:
    """Print runs per neighbourhood (or merged small neighbourhoods) and message, with the link to print."""
    short = [f"{spec.short_url}{_short_code(u)}" if spec.short_url else "" for u in rows["url"]]
    return pd.DataFrame({
        "print_run": [f"{campaign(wave)}_{m}_{t}" for m, t in zip(rows["message"], rows["line"], strict=True)],
        "campaign": campaign(wave), "municipality": [_join(m) for m in rows["municipalities"]],
        "postcodes": [_join(p) for p in rows["postcodes"]],
                         "neighbourhoods": [_join(n) for n in rows["neighbourhoods"]],
        "message": rows["message"].to_numpy(), "creative_id": [spec.creative(m) for m in rows["message"]],
        "copies": [_copies(c, declared.people_per_copy) for c in rows["contacts"]],
        "planned_contacts": rows["contacts"].to_numpy(), "spend_eur": rows["cents"].to_numpy() / 100,
        "deliver_from": start.isoformat(), "deliver_until": (start + dt.timedelta(days=6)).isoformat(),
        "url": rows["url"].to_numpy(), "short_url": short, "utm_term": rows["line"].to_numpy(),
        "below_minimum": rows["below_minimum"].to_numpy(),
    })


def _short_code(url: str) -> str:
    """A print run's short code: 8 hex digits of its full URL (the short link redirects to that URL)."""
    return hashlib.sha256(url.encode()).hexdigest()[:8]


def _mailings(rows: pd.DataFrame, spec: HandoffSpec, declared, wave: int, start: dt.date, end: dt.date) -> pd.DataFrame:
    """Mailings as a list selection: age band, gender and places of the addresses, how many to send."""
    return pd.DataFrame({
        "mailing": [f"{campaign(wave)}_{m}_{t}" for m, t in zip(rows["message"], rows["line"], strict=True)],
        "campaign": campaign(wave), "message": rows["message"].to_numpy(),
        "creative_id": [spec.creative(m) for m in rows["message"]], "age_band": rows["age_band"].to_numpy(),
        "gender": rows["gender"].to_numpy(), "municipalities": [_join(m) for m in rows["municipalities"]],
        "addresses": rows["contacts"].to_numpy(), "spend_eur": rows["cents"].to_numpy() / 100,
        "send_date": start.isoformat(), "url": rows["url"].to_numpy(), "utm_term": rows["line"].to_numpy(),
        "below_minimum": rows["below_minimum"].to_numpy(),
    })


_SHEETS = {"ad_sets": _ad_sets, "print_run": _print_runs, "mailing": _mailings}

_HOW = {
    "ad_sets": "platform holdout: exclude a random {share} of the ad set's audience from delivery (a lift test's "
               "holdout, seed {seed}); they see no message of this wave",
    "print_run": "withheld addresses: skip a random {share} of the addresses in the listed postcodes (drawn from "
                 "the distribution list with seed {seed}); keep the list of skipped addresses",
    "mailing": "withheld addresses: leave out a random {share} of the selected addresses (seed {seed}); keep their "
               "ids",
}


def _holdout(lines: pd.DataFrame, policy: PlanningPolicy) -> pd.DataFrame:
    """Per line: how its holdout is withheld and how many people it plans to withhold."""
    seeds = [_seed(policy.seed, r.channel, r.message, r.line) for r in lines.itertuples()]
    share = f"{policy.holdout_share:.0%}"
    return pd.DataFrame({
        "channel": lines["channel"].to_numpy(), "message": lines["message"].to_numpy(),
        "utm_term": lines["line"].to_numpy(),
        "method": lines["kind"].map({"ad_sets": "platform_holdout", "print_run": "withheld_addresses",
                                     "mailing": "withheld_addresses"}).to_numpy(),
        "share": policy.holdout_share, "planned_holdout_people": lines["holdout_people"].to_numpy(),
        "postcodes": [_join(p) for p in lines["postcodes"]], "seed": seeds,
        "how": [_HOW[k].format(share=share, seed=s) for k, s in zip(lines["kind"], seeds, strict=True)],
    })


def _seed(seed: int, *parts: str) -> int:
    """A line's own seed: the policy's seed and the line's names hashed (stable across runs)."""
    return int(hashlib.sha256("|".join([str(seed), *parts]).encode()).hexdigest()[:8], 16)


def _key(lines: pd.DataFrame, costs: CostCatalogue, wave: int) -> pd.DataFrame:
    """Every link's UTM parameters with the line and the plan cells behind it: what attribution reads."""
    return pd.DataFrame({
        "utm_source": lines["channel"].map(utm_value).to_numpy(), "utm_medium": lines["kind"].map(MEDIUM).to_numpy(),
        "utm_campaign": campaign(wave), "utm_content": lines["message"].map(utm_value).to_numpy(),
        "utm_term": lines["line"].to_numpy(), "arm": lines["arm"].to_numpy(), "wave": int(wave),
        "file": [sheet_name(c, k) for c, k in zip(lines["channel"], lines["kind"], strict=True)],
        "postcodes": [_join(p) for p in lines["postcodes"]], "segments": [_join(s) for s in lines["segments"]],
    })[[*UTM_KEYS, "arm", "wave", "file", "postcodes", "segments"]]


def _manifest(lines: pd.DataFrame, sheets: dict[str, pd.DataFrame], cells: pd.DataFrame, total_cents: int, *,
              wave: int, start: dt.date, end: dt.date, spec: HandoffSpec, policy: PlanningPolicy) -> dict:
    """The files with their totals, the plan's totals they add up to, and what to watch."""
    funded = cells[cells["contacts"] > 0]
    files = []
    for (channel, kind), rows in lines.groupby(["channel", "kind"], sort=True):
        files.append({"file": sheet_name(channel, kind), "channel": channel, "kind": kind, "lines": len(rows),
                      "spend_eur": _eur(int(rows["cents"].sum())), "planned_contacts": int(rows["contacts"].sum()),
                      "planned_holdout_people": int(rows["holdout_people"].sum()),
                      "below_minimum": int((rows["below_minimum"] != "").sum())})
    plan = {"spend_eur": _eur(total_cents), "contacts": int(funded["contacts"].sum()),
            "holdout_people": int(funded["holdout_people"].sum()),
            "spend_by_channel_eur": {c: round(float(s), 2)
                                     for c, s in funded.groupby("channel")["spend"].sum().items()}}
    sums = {"spend_eur": _eur(int(lines["cents"].sum())), "contacts": int(lines["contacts"].sum()),
            "holdout_people": int(lines["holdout_people"].sum())}
    return {
        "wave": int(wave), "utm_campaign": campaign(wave), "start_date": start.isoformat(), "end_date": end.isoformat(),
        "landing_url": spec.landing_url, "holdout_share": policy.holdout_share,
        "utm_scheme": {"utm_source": "channel", "utm_medium": "paid_social | print | email (the channel's hand-off)",
                       "utm_campaign": "wave-<n>", "utm_content": "message", "utm_term": "the line's cell code"},
        "files": [*files, {"file": HOLDOUT_FILE, "lines": len(lines)}, {"file": KEY_FILE, "lines": len(lines)}],
        "plan": plan, "files_total": sums, "adds_up": sums["spend_eur"] == plan["spend_eur"]
        and sums["contacts"] == plan["contacts"] and sums["holdout_people"] == plan["holdout_people"],
        "below_minimum": [f"{r.channel} {r.message} {r.line}: {r.below_minimum}" for r in lines.itertuples()
                          if r.below_minimum],
        "not_targeted": sorted({f"{r.channel}: {d}" for r in lines.itertuples() for d in r.not_targeted}),
    }


def _eur(cents: int) -> float:
    return round(cents / 100, 2)
