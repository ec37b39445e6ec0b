"""The simulator's own response model with its numbers left free, fitted to a world's randomised rows.

A yardstick for the decision benchmark: how far could *any* estimate of the segment effects carry the
plans with this much history? :class:`TrueForm` writes a row's registration probability exactly as
the simulator computes it (``uplift.specs.region``'s formula: persona baselines and baseline
modifiers, each message's lift per persona plus its adjustments, channel multipliers and their
modifiers, wear-out, the floor on the relative lift and the cap on the probability), given each row's
true persona. Every number the region declares for them is a free parameter, fitted by maximum
likelihood on the rows' outcomes (:func:`fit_true_form`). The estimator knows everything about the
world except its numbers, including the persona no audience file shows, so it is an optimistic
reference, not one the product could build: a correctly specified model fitted by maximum likelihood
is asymptotically efficient, and plans from its effects show what the data's noise leaves for
estimators that must also learn the form.

At the region's own numbers (:meth:`TrueForm.truth_parameters`) it reproduces the simulator's
probabilities exactly (``tests/test_evaluation.py``). Only the registration outcome is modelled.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import minimize

from uplift.data.vocabulary import HOLDOUT, split_arm
from uplift.errors import DataError, SchemaError
from uplift.simulate.conditions import matches
from uplift.specs.region import RegionSpec

__all__ = ["FittedForm", "TrueForm", "fit_true_form", "people_for_rows", "shown_before", "true_form"]


@dataclass(frozen=True)
class TrueForm:
    """The simulator's response model over a set of rows; parameters are one flat vector.

    Layout of the vector: per persona the log of its holdout rate; per baseline modifier the log of
    its factor; per persona and message the lift (message-major within each persona); per message
    adjustment its addition; per channel after the first the log of its multiplier (the first
    channel's multiplier is held at its declared value: scaling every lift up and every multiplier
    down by the same factor changes no probability); per channel modifier the log of its factor;
    the wear-out factor last.
    """

    spec: RegionSpec
    persona: np.ndarray  # (n,) persona code, in spec.personas order
    baseline_masks: np.ndarray  # (n, B) rows each baseline modifier applies to
    adjustment_masks: tuple[np.ndarray, ...]  # per message, (n, A_m)
    channel_masks: tuple[np.ndarray, ...]  # per channel, (n, K_c)
    shown: np.ndarray  # (n, M) earlier waves that showed the row's person each message

    @property
    def personas(self) -> list[str]:
        return list(self.spec.personas)

    @property
    def messages(self) -> list[str]:
        return list(self.spec.messages)

    @property
    def channels(self) -> list[str]:
        return list(self.spec.channels)

    def _slices(self) -> dict[str, slice]:
        sizes = {
            "persona": len(self.personas),
            "baseline_modifier": self.baseline_masks.shape[1],
            "lift": len(self.personas) * len(self.messages),
            "adjustment": sum(m.shape[1] for m in self.adjustment_masks),
            "channel": len(self.channels) - 1,
            "channel_modifier": sum(m.shape[1] for m in self.channel_masks),
            "wear_out": 1,
        }
        out, start = {}, 0
        for name, size in sizes.items():
            out[name] = slice(start, start + size)
            start += size
        return out

    @property
    def size(self) -> int:
        """Number of free parameters."""
        return self._slices()["wear_out"].stop

    def truth_parameters(self) -> np.ndarray:
        """The region's own numbers in this model's layout."""
        s = self.spec
        values = [np.log(s.baseline.registration * s.personas[p].baseline) for p in self.personas]
        values += [np.log(m.factor) for m in s.baseline.modifiers]
        values += [s.messages[m].lift.get(p, 0.0) for p in self.personas for m in self.messages]
        values += [a.add for m in self.messages for a in s.messages[m].adjustments]
        values += [np.log(s.channels[c].multiplier) for c in self.channels[1:]]
        values += [np.log(f.factor) for c in self.channels for f in s.channels[c].modifiers]
        values.append(s.wear_out)
        return np.asarray(values, dtype=float)

    def start(self, holdout_rate: float) -> np.ndarray:
        """A neutral starting point: every persona at ``holdout_rate``, no lifts, no modifiers, wear-out 0.8."""
        theta = np.zeros(self.size)
        theta[self._slices()["persona"]] = np.log(max(holdout_rate, 1e-6))
        theta[-1] = 0.8
        return theta

    def probabilities(self, theta: np.ndarray, message: np.ndarray, channel: np.ndarray) -> np.ndarray:
        """Per row, the registration probability under its arm (``message`` -1: the holdout)."""
        return self._evaluate(theta, message, channel)[0]

    def loss(self, theta: np.ndarray, message: np.ndarray, channel: np.ndarray,
             outcome: np.ndarray) -> tuple[float, np.ndarray]:
        """The rows' negative log-likelihood at ``theta`` given their 0/1 ``outcome``, and its gradient."""
        _, value, grad = self._evaluate(theta, message, channel, outcome=np.asarray(outcome, dtype=float))
        return value, grad

    def arm_probabilities(self, theta: np.ndarray, arms: list[str] | tuple[str, ...]) -> pd.DataFrame:
        """Per row, the probability under every arm in ``arms`` (``holdout`` or ``message@channel``)."""
        n = len(self.persona)
        columns = {}
        for arm in arms:
            message, channel = self.arm_codes(np.full(n, arm, dtype=object))
            columns[arm] = self.probabilities(theta, message, channel)
        return pd.DataFrame(columns)

    def arm_codes(self, arms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Message and channel codes of arm labels (message -1 and channel 0 for the holdout)."""
        codes, labels = pd.factorize(pd.Series(np.asarray(arms, dtype=object)).astype(str))
        unknown = sorted(set(labels) - {HOLDOUT, *self.spec.arm_names(include_control=False)})
        if unknown:
            raise DataError(f"arm: {unknown[:3]} are not arms of region {self.spec.name!r}")
        parts = [split_arm(a) if a != HOLDOUT else (None, None) for a in labels]  # once per distinct arm
        message = np.array([self.messages.index(m) if m is not None else -1 for m, _ in parts])
        channel = np.array([self.channels.index(c) if c is not None else 0 for _, c in parts])
        return message[codes], channel[codes]

    def _evaluate(self, theta: np.ndarray, message: np.ndarray, channel: np.ndarray, *,
                  outcome: np.ndarray | None = None):
        """Probabilities; with the rows' 0/1 ``outcome`` also the negative log-likelihood and its gradient."""
        terms = self._forward(theta, message, channel)
        if outcome is None:
            return terms.p, None, None
        loss, grad = self._loss_and_gradient(terms, channel, outcome)
        return terms.p, loss, grad

    def _forward(self, theta: np.ndarray, message: np.ndarray, channel: np.ndarray) -> _Terms:
        """Per row, the probability under its arm and the parts it is made of."""
        sl = self._slices()
        treated = message >= 0
        m = np.where(treated, message, 0)
        b = np.exp(theta[sl["persona"]][self.persona] + self.baseline_masks @ theta[sl["baseline_modifier"]])
        L = self._lift(theta, m)
        C = self._channel_factor(theta, channel)
        w = theta[-1]
        s = self.shown[np.arange(len(self.persona)), m]
        ws = np.power(w, s)
        r0 = np.where(treated, L * ws * C, 0.0)
        low = treated & (r0 < self.spec.min_relative_lift)
        r = np.maximum(r0, self.spec.min_relative_lift)
        raw = b * (1.0 + np.where(treated, r, 0.0))
        return _Terms(treated=treated, m=m, b=b, L=L, C=C, w=w, s=s, ws=ws, r0=r0, low=low,
                      capped=raw > self.spec.max_probability, p=np.minimum(raw, self.spec.max_probability))

    def _lift(self, theta: np.ndarray, m: np.ndarray) -> np.ndarray:
        """Per row, message ``m``'s lift for the row's persona plus the message's adjustments that apply."""
        sl = self._slices()
        lifts = theta[sl["lift"]].reshape(len(self.personas), len(self.messages))
        L = lifts[self.persona, m]
        adds = theta[sl["adjustment"]]
        start = 0
        for j, masks in enumerate(self.adjustment_masks):
            k = masks.shape[1]
            if k:
                L = L + np.where(m == j, masks @ adds[start:start + k], 0.0)
            start += k
        return L

    def _channel_factor(self, theta: np.ndarray, channel: np.ndarray) -> np.ndarray:
        """Per row, its channel's multiplier times the channel's modifiers that apply."""
        sl = self._slices()
        log_c = np.zeros(len(self.persona))
        bases = np.concatenate([[np.log(self.spec.channels[self.channels[0]].multiplier)], theta[sl["channel"]]])
        mods = theta[sl["channel_modifier"]]
        start = 0
        for c, masks in enumerate(self.channel_masks):
            k = masks.shape[1]
            here = channel == c
            log_c = np.where(here, bases[c] + (masks @ mods[start:start + k] if k else 0.0), log_c)
            start += k
        return np.exp(log_c)

    def _loss_and_gradient(self, t: _Terms, channel: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        """The rows' negative log-likelihood given their 0/1 outcomes ``y``, and its gradient in ``theta``."""
        sl = self._slices()
        n_messages = len(self.messages)
        safe = np.clip(t.p, 1e-12, 1.0 - 1e-9)
        loss = -float(np.sum(y * np.log(safe) + (1.0 - y) * np.log1p(-safe)))
        g = np.where(t.capped, 0.0, -(y / safe - (1.0 - y) / (1.0 - safe)))  # d loss / d p
        grad = np.zeros(self.size)
        grad[sl["persona"]] = np.bincount(self.persona, weights=g * t.p, minlength=len(self.personas))
        grad[sl["baseline_modifier"]] = self.baseline_masks.T @ (g * t.p)
        active = t.treated & ~t.low
        q = np.where(active, g * t.b * t.ws * t.C, 0.0)  # d loss / d L
        grad[sl["lift"]] = np.bincount(self.persona * n_messages + t.m, weights=q,
                                       minlength=len(self.personas) * n_messages)
        start, out = 0, sl["adjustment"].start
        for j, masks in enumerate(self.adjustment_masks):
            k = masks.shape[1]
            if k:
                grad[out + start:out + start + k] = masks.T @ np.where(t.m == j, q, 0.0)
            start += k
        self._channel_gradient(grad, np.where(active, g * t.b * t.r0, 0.0), channel)
        worn = active & (t.s > 0)  # d p / d w = b L C s w^(s-1)
        grad[-1] = float(np.sum(np.where(worn, g * t.b * t.C * t.L * t.s * np.power(t.w, np.maximum(t.s - 1, 0)),
                                         0.0)))
        return loss, grad

    def _channel_gradient(self, grad: np.ndarray, d_log_c: np.ndarray, channel: np.ndarray) -> None:
        """Fill ``grad``'s channel and channel-modifier entries from each row's ``d loss / d log C``."""
        sl = self._slices()
        start = 0
        for c, masks in enumerate(self.channel_masks):
            k = masks.shape[1]
            here = np.where(channel == c, d_log_c, 0.0)
            if c > 0:
                grad[sl["channel"].start + c - 1] = here.sum()
            if k:
                grad[sl["channel_modifier"].start + start:sl["channel_modifier"].start + start + k] = masks.T @ here
            start += k


@dataclass(frozen=True)
class _Terms:
    """One forward pass of :class:`TrueForm`, per row: treated or not, the message code ``m``, the baseline
    ``b``, lift ``L``, channel factor ``C``, wear-out ``w`` and earlier showings ``s`` (``ws = w ** s``), the
    relative lift ``r0`` before its floor, where the floor (``low``) and the cap (``capped``) bind, and ``p``."""

    treated: np.ndarray
    m: np.ndarray
    b: np.ndarray
    L: np.ndarray
    C: np.ndarray
    w: float
    s: np.ndarray
    ws: np.ndarray
    r0: np.ndarray
    low: np.ndarray
    capped: np.ndarray
    p: np.ndarray


@dataclass(frozen=True)
class FittedForm:
    """:func:`fit_true_form`'s result: the fitted vector of highest likelihood, whether its optimiser
    converged, its iterations, its log-likelihood, and the log-likelihood reached from every start."""

    theta: np.ndarray
    converged: bool
    iterations: int
    log_likelihood: float
    per_start: tuple[float, ...]


def true_form(spec: RegionSpec, people: pd.DataFrame, shown: np.ndarray) -> TrueForm:
    """The response model over ``people`` (one row per person-wave: the audience attributes,
    ``persona`` and ``deprivation``, as :func:`people_for_rows` makes them) with ``shown``
    (:func:`shown_before`, columns in ``spec.messages`` order)."""
    unknown = sorted(set(people["persona"].astype(str)) - set(spec.personas))
    if unknown:
        raise DataError(f"persona: {unknown[:3]} are not personas of region {spec.name!r}")
    shown = np.asarray(shown, dtype=float)
    if shown.shape != (len(people), len(spec.messages)):
        raise SchemaError(f"shown: expected shape {(len(people), len(spec.messages))}, got {shown.shape}")

    def masks(conditions) -> np.ndarray:
        return np.column_stack([matches(c, people)
                                for c in conditions]).astype(float) if conditions else np.zeros((len(people), 0))

    return TrueForm(
        spec=spec,
        persona=pd.Index(list(spec.personas)).get_indexer(people["persona"].astype(str)),
        baseline_masks=masks([m.when for m in spec.baseline.modifiers]),
        adjustment_masks=tuple(masks([a.when for a in spec.messages[m].adjustments]) for m in spec.messages),
        channel_masks=tuple(masks([f.when for f in spec.channels[c].modifiers]) for c in spec.channels),
        shown=shown,
    )


def fit_true_form(form: TrueForm, outcome: np.ndarray, arms: np.ndarray, *,
                  starts: list[np.ndarray] | None = None, max_iterations: int = 2000) -> FittedForm:
    """Maximum-likelihood fit of every free number (L-BFGS-B, analytic gradient) on the rows' 0/1
    ``outcome`` under the ``arms`` they were randomised to.

    The likelihood has local optima (lifts and channel multipliers multiply), so the fit runs from
    every one of ``starts`` and keeps the one of highest likelihood. By default: a neutral start
    (:meth:`TrueForm.start`) and the region's own numbers. Starting at the truth does not make the
    estimate the truth: the optimiser climbs to the data's nearest optimum, and the choice between
    starts is by likelihood alone.
    """
    y = np.asarray(outcome, dtype=float)
    message, channel = form.arm_codes(arms)
    if starts is None:
        holdout = message < 0
        starts = [form.start(float(y[holdout].mean()) if holdout.any() else float(y.mean())), form.truth_parameters()]

    bounds = [(None, None)] * (form.size - 1) + [(0.01, 1.0)]
    results = [minimize(form.loss, np.asarray(x0, dtype=float), jac=True, method="L-BFGS-B", bounds=bounds,
                        args=(message, channel, y), options={"maxiter": max_iterations}) for x0 in starts]
    best = min(results, key=lambda r: r.fun)
    return FittedForm(theta=best.x, converged=bool(best.success), iterations=int(best.nit),
                      log_likelihood=-float(best.fun), per_start=tuple(-float(r.fun) for r in results))


def shown_before(keys: pd.DataFrame, messages: list[str] | tuple[str, ...]) -> np.ndarray:
    """Per row of ``keys`` (``person_id``, ``wave``, ``arm``: every wave a person was randomised in),
    how many of the person's earlier waves showed each message, ``(n, len(messages))``."""
    missing = [c for c in ("person_id", "wave", "arm") if c not in keys.columns]
    if missing:
        raise SchemaError(f"rows: missing column(s) {missing}")
    message = keys["arm"].astype(str).map(lambda a: split_arm(a)[0] if a != HOLDOUT else "")
    order = np.lexsort((keys["wave"].to_numpy(), keys["person_id"].astype(str).to_numpy()))
    person = keys["person_id"].astype(str).to_numpy()[order]
    out = np.zeros((len(keys), len(messages)))
    for j, name in enumerate(messages):
        hit = (message.to_numpy()[order] == name).astype(float)
        upto = pd.Series(hit).groupby(person).cumsum().to_numpy() - hit  # earlier waves only
        out[order, j] = upto
    return out


def people_for_rows(frame: pd.DataFrame, truth: pd.DataFrame, spec: RegionSpec) -> pd.DataFrame:
    """The rows' audience attributes with the truth's ``persona`` (by ``person_id`` and ``wave``) and
    their neighbourhood's ``deprivation`` (from ``spec``)."""
    keys = frame[["person_id", "wave"]].astype({"person_id": str})
    persona = truth[["person_id", "wave", "persona"]].astype({"person_id": str})
    merged = keys.merge(persona, on=["person_id", "wave"], how="left", validate="one_to_one")
    if merged["persona"].isna().any():
        raise DataError(f"truth: {int(merged['persona'].isna().sum())} row(s) have no truth row")
    deprivation = {nb.postcode: nb.deprivation for m in spec.municipalities for nb in m.neighbourhoods}
    people = frame.copy()
    people["persona"] = merged["persona"].astype(str).to_numpy()
    people["deprivation"] = frame["neighbourhood"].astype(str).map(deprivation).to_numpy(dtype=float)
    if people["deprivation"].isna().any():
        raise DataError(f"neighbourhood: {int(people['deprivation'].isna().sum())} row(s) name a neighbourhood "
                        f"region {spec.name!r} does not declare")
    return people
