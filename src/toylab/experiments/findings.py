"""The published findings toylab reproduces, each declared once: claim, source, check, figure.

A :class:`Finding` names the study that measures it (a key of
:data:`toylab.experiments.studies.STUDIES`), and its ``check`` reads that study's summary (what
``toylab reproduce STUDY --json`` prints as ``result``) and returns a :class:`Measured`: the
value as a researcher would quote it, whether it passed, and the numbers behind it. The
tolerance of each check is written in its ``expected`` text and in the check itself, once.

Where toylab disagrees with its source, the finding says so (``agrees=False`` and
``disagreement``, the evidence in one sentence): its check tests what toylab measured, and the
report shows the disagreement next to the claim rather than hiding it or bending the check.

Example:
    >>> from toylab.experiments.findings import FINDINGS, select
    >>> [f.id for f in select(["intro-pentagon"])]
    ['intro-pentagon']
    >>> sorted({f.study for f in FINDINGS})  # doctest: +NORMALIZE_WHITESPACE
    ['capability', 'dimensionality', 'importance', 'intro', 'linear', 'myopia', 'phase-n2m1', 'phase-n3m2', 'rescale',
     'scurves']
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from toylab.errors import ConfigError
from toylab.experiments.phase import near_boundary
from toylab.experiments.tms import REPORT_RELATIVE_ERROR
from toylab.theory.saxe import drop_time
from toylab.train.schedule import planned_evaluations

__all__ = ["Measured", "Finding", "FINDINGS", "select", "evaluate"]


@dataclasses.dataclass(frozen=True)
class Measured:
    """What a check read off a study's summary."""

    value: str  # the measured value as it reads next to ``expected``
    passed: bool
    numbers: dict[str, Any] = dataclasses.field(default_factory=dict)  # the values behind ``value``, for JSON


@dataclasses.dataclass(frozen=True)
class Finding:
    """One published (or toylab-measured) finding and how a study's result checks it."""

    id: str
    claim: str  # one sentence
    source: str  # paper and section or figure, or the seed's comment
    study: str  # the study whose summary ``check`` reads
    expected: str  # the expected value, with the check's tolerance
    check: Callable[[dict[str, Any]], Measured]
    figure: str  # the figure (file stem in the study's run folder) that shows it
    agrees: bool = True  # False: toylab disagrees with the source; ``disagreement`` says how
    disagreement: str | None = None


# -- intro (Elhage et al. 2022, §1: n = 5, m = 2, I_i = 0.9^i) ----------------------------------


def _best_at(summary: dict[str, Any], p: float) -> dict[str, Any]:
    return min(summary["best"], key=lambda b: abs(b["feature_probability"] - p))


def _pentagon(summary: dict[str, Any]) -> Measured:
    best = _best_at(summary, min(b["feature_probability"] for b in summary["best"]))
    if best["diverged"]:
        return Measured("diverged", False)
    names = [g["name"] for g in best["geometry"]]
    D = best["feature_dimensionality"]
    passed = names == ["pentagon"] and all(abs(d - 0.4) <= 0.05 for d in D)
    return Measured(f"{' + '.join(names)}; D_i {min(D):.2f}–{max(D):.2f}; "
                    f"{best['features_per_dimension']:.2f} features/dim at p = {best['feature_probability']:.3g}",
                    passed, {"geometry": names, "D_i": D, "features_per_dimension": best["features_per_dimension"]})


def _pca(summary: dict[str, Any]) -> Measured:
    best = _best_at(summary, 1.0)
    if best["diverged"]:
        return Measured("diverged", False)
    D = best["feature_dimensionality"]
    passed = best["n_represented"] == 2 and min(D[:2]) >= 0.95 and max(D[2:]) <= 0.05
    return Measured(f"{best['n_represented']} features represented; D_i " + " ".join(f"{d:.2f}" for d in D),
                    passed, {"n_represented": best["n_represented"], "D_i": D})


def _packing(summary: dict[str, Any]) -> Measured:
    rows = sorted((b for b in summary["best"] if not b["diverged"]), key=lambda b: -b["feature_probability"])
    fpd = [b["features_per_dimension"] for b in rows]
    if len(fpd) < 2:
        return Measured("fewer than two finite probabilities", False)
    passed = fpd[0] <= 1.05 and fpd[-1] >= 2.3
    return Measured(f"{fpd[0]:.2f} at p = {rows[0]['feature_probability']:.3g} → {fpd[-1]:.2f} at "
                    f"p = {rows[-1]['feature_probability']:.3g}", passed,
                    {"feature_probability": [b["feature_probability"] for b in rows], "features_per_dimension": fpd})


# How close to a level "at" it is. Not read off a run: a smooth fall from the dense level 1 to the
# pentagon's 2/5 across the intro's 10 probabilities drops (1 − 2/5)/9 ≈ 0.067 a step, so it can put
# two consecutive points within ±0.033 of a level only by flattening there, which is the claim.
STICKY_BAND = 0.03


def _longest_run(values: Sequence[float], level: float, within: float) -> int:
    """The most consecutive values within ``within`` of ``level``."""
    best = run = 0
    for value in values:
        run = run + 1 if abs(value - level) <= within else 0
        best = max(best, run)
    return best


def _sticky_at(entries: str, minimum: int, band: float) -> Callable[[dict[str, Any]], Measured]:
    """How many consecutive probabilities (best seeds, dense to sparse) sit within ``band`` of 1 and of 1/2;
    passes with at least ``minimum`` at each. ``entries``: the summary's list of best seeds."""
    def check(summary: dict[str, Any]) -> Measured:
        rows = sorted((b for b in summary[entries] if not b["diverged"]), key=lambda b: -b["feature_probability"])
        values = [b["dimensions_per_feature"] for b in rows]
        runs = {level: _longest_run(values, level, band) for level in (1.0, 0.5)}
        return Measured(f"{runs[1.0]} consecutive settings at 1, {runs[0.5]} at 1/2 ("
                        + ", ".join(f"{v:.2f}" for v in values) + ")", min(runs.values()) >= minimum,
                        {"dimensions_per_feature": values, "run_at_1": runs[1.0], "run_at_half": runs[0.5]})
    return check


_sticky = _sticky_at("best", 2, STICKY_BAND)


def _elicitation(summary: dict[str, Any]) -> Measured:
    """Relative gap (raw − elicited) / raw at every evaluation of every best seed."""
    points = []  # (relative gap, step, is the final evaluation)
    for best in summary["best"]:
        history = [row for row in best["history"] if row.get("elicited_loss") is not None and row["loss"] > 0]
        points += [((row["loss"] - row["elicited_loss"]) / row["loss"], row["step"], i == len(history) - 1)
                   for i, row in enumerate(history)]
    if not points:
        return Measured("no elicited evaluations", False)
    worst, largest = min(points), max(points)
    # A loss difference under the 1% relative standard error toylab holds its reported losses to
    # (tms.REPORT_RELATIVE_ERROR) is not a measured effect; worse than that, elicitation hurt.
    passed = worst[0] >= -REPORT_RELATIVE_ERROR and not largest[2]
    return Measured(f"{len(points)} evaluations; (raw − elicited)/raw from {100 * worst[0]:+.2g}% to "
                    f"{100 * largest[0]:+.2g}% (largest at step {largest[1]})", passed,
                    {"min_relative_gap": worst[0], "max_relative_gap": largest[0], "max_gap_step": largest[1]})


# -- importance and dimensionality (the reference notebook's n = 100 and n = 200 experiments) -----
# Tolerances written from the paper's figures before the full-size runs were looked at.


def _dense_to_sparse(summary: dict[str, Any]) -> list[dict[str, Any]]:
    return sorted((r for r in summary["rows"] if not r["diverged"]), key=lambda r: -r["feature_probability"])


def _importance_pca(summary: dict[str, Any]) -> Measured:
    dense = _best_at({"best": summary["rows"]}, 1.0)
    if dense["diverged"]:
        return Measured("diverged", False)
    m = summary["study"]["n_hidden"]
    D = dense["feature_dimensionality"]
    top_alone = sum(d >= 0.95 for d in D[:m])
    rest = max(D[m:])
    passed = dense["n_represented"] == m and top_alone == m and rest <= 0.05
    return Measured(f"{dense['n_represented']} features kept; {top_alone} of the {m} most important alone "
                    f"(D_i ≥ 0.95); largest D_i of the other {len(D) - m}: {rest:.2g}", passed,
                    {"n_represented": dense["n_represented"], "top_alone": top_alone, "max_D_rest": rest})


def _importance_grows(summary: dict[str, Any]) -> Measured:
    rows = _dense_to_sparse(summary)
    if len(rows) < 2:
        return Measured("fewer than two finite probabilities", False)
    m = summary["study"]["n_hidden"]
    kept, shared = [r["n_represented"] for r in rows], [r["n_superposed"] for r in rows]
    passed = shared[0] == 0 and shared[-1] >= m / 2 and kept[-1] >= 1.5 * m
    return Measured(f"features kept {kept[0]} → {kept[-1]}, sharing a direction {shared[0]} → {shared[-1]} "
                    f"(p = {rows[0]['feature_probability']:.3g} → {rows[-1]['feature_probability']:.3g}; "
                    f"sharing at each p: {', '.join(map(str, shared))})", passed,
                    {"feature_probability": [r["feature_probability"] for r in rows], "n_represented": kept,
                     "n_superposed": shared})


def _importance_order(summary: dict[str, Any]) -> Measured:
    """At each probability with features both alone and shared: median importance rank of each."""
    worst = None  # (median rank alone − median rank shared, p): the check needs it < 0 everywhere
    compared = 0
    for row in _dense_to_sparse(summary):
        kept = [i for i, norm in enumerate(row["feature_norms"]) if norm >= 0.25 * max(row["feature_norms"])]
        alone = [i for i in kept if row["feature_dimensionality"][i] >= 0.95]
        shared = [i for i in kept if row["feature_dimensionality"][i] < 0.95]
        if alone and shared:
            compared += 1
            gap = _median(alone) - _median(shared)
            if worst is None or gap > worst[0]:
                worst = (gap, row["feature_probability"])
    if worst is None:
        return Measured("no probability has features both alone and shared", False)
    return Measured(f"{compared} probabilities with both; closest: median rank alone − shared = {worst[0]:+.1f} "
                    f"at p = {worst[1]:.3g}", worst[0] < 0, {"compared": compared, "largest_gap": worst[0],
                                                             "at": worst[1]})


def _fractions(summary: dict[str, Any]) -> Measured:
    """Features near a fraction, pooled over the probabilities where the model superposes
    (m/‖W‖²_F < 0.95): with equal importance and dense inputs any m-dimensional projection serves, and
    its features' D_i spread anywhere (n = 20, m = 4, p = 1: D_i from 0.03 to 0.58 at m/‖W‖²_F = 1.00)."""
    counts: dict[str, int] = {}
    for row in _dense_to_sparse(summary):
        if row["dimensions_per_feature"] >= 0.95:
            continue
        for key, value in row["fraction_counts"].items():
            counts[key] = counts.get(key, 0) + value
    kept = sum(v for k, v in counts.items() if k != "not represented")
    near = kept - counts.get("other", 0)
    if not kept:
        return Measured("no feature represented", False)
    share = near / kept
    at = ", ".join(f"{k}: {v}" for k, v in counts.items() if k not in ("other", "not represented"))
    return Measured(f"{100 * share:.0f}% of {kept} represented features (where m/‖W‖²_F < 0.95) within "
                    f"{summary['study']['near']} of a fraction ({at}; other: {counts['other']})", share >= 0.6,
                    {"share": share, "counts": counts})


# -- scurves (Jermyn & Shlegeris 2022 and its comments) -----------------------------------------


def _rank(summary: dict[str, Any], sweep: str, rank: int) -> dict[str, Any]:
    return next(r for r in summary["sweeps"][sweep]["ranks"] if r["rank"] == rank)


def _staircase(summary: dict[str, Any]) -> Measured:
    two = _rank(summary, "mse-gd", 2)
    four = _rank(summary, "mse-gd", 4)["mode_half_steps"][0]
    in_order = four is not None and not any(_missing(x) for x in four) and \
        all(a <= b for a, b in zip(four, four[1:], strict=False)) and four[0] < four[-1]
    passed = all(d == 2 for d in two["drops"]) and in_order
    modes = "—" if four is None else "–".join("—" if _missing(x) else f"{x:.0f}" for x in four)
    return Measured(f"rank 2: drops {'/'.join(map(str, two['drops']))} per seed; rank 4: modes half-learned at "
                    f"steps {modes}", passed, {"rank2_drops": two["drops"], "rank4_mode_half_steps": four})


def _drops(sweep: str, rank: int, want: int) -> Callable[[dict[str, Any]], Measured]:
    def check(summary: dict[str, Any]) -> Measured:
        drops = _rank(summary, sweep, rank)["drops"]
        return Measured(f"{'/'.join(map(str, drops))} drops per seed at rank {rank}", all(d == want for d in drops),
                        {"drops": drops})
    return check


def _missing(value: float | None) -> bool:
    """A value the summary left out: None in JSON (NaN when read from a TrainResult)."""
    return value is None or math.isnan(value)


def _median(values: Sequence[float]) -> float:
    finite = sorted(v for v in values if not _missing(v))
    if not finite:
        return math.nan
    middle = len(finite) // 2
    return finite[middle] if len(finite) % 2 else (finite[middle - 1] + finite[middle]) / 2


def _plateau_row(summary: dict[str, Any], name: str) -> tuple[list[float], list[float]]:
    entry = summary["init"][name]
    return entry["init_scales"], [_median(row) for row in entry["plateau_steps"]]


def _fmt_steps(values: Sequence[float]) -> str:
    return ", ".join("none" if math.isnan(v) else f"{v:.0f}" for v in values)


def _gd_plateau(summary: dict[str, Any]) -> Measured:
    scales, steps = _plateau_row(summary, "init-gd")  # ε from 1e-1 down to 1e-4
    small = [(eps, s) for eps, s in zip(scales, steps, strict=True) if eps <= 1e-2]
    grows = all(not _missing(s) for _, s in small) and all(a[1] < b[1] for a, b in zip(small, small[1:], strict=False))
    largest = steps[0]
    passed = grows and (_missing(largest) or largest < 0.5 * small[0][1])
    # Saxe: the plateau lasts ln(s/u₀)/(2s) in t = lr·steps, and u₀ ∝ ε² for a product of two
    # components, so each decade of ε adds ln(10)/(s_max·lr) steps: shown beside the measured slope.
    s_max = max(run["singular_values"][0] for run in summary["sweeps"]["mse-gd"]["runs"])
    theory = math.log(10) / (s_max * summary["init"]["init-gd"]["lr"])
    slope = (small[-1][1] - small[0][1]) / math.log10(small[0][0] / small[-1][0]) if grows else math.nan
    return Measured(f"first plateau (steps) at ε = {', '.join(f'{e:g}' for e in scales)}: {_fmt_steps(steps)}; "
                    f"{slope:.1f} steps per decade of ε (Saxe: {theory:.1f})", passed,
                    {"init_scales": scales, "median_plateau_steps": steps, "steps_per_decade": slope,
                     "saxe_steps_per_decade": theory})


def _ce_rank10(summary: dict[str, Any]) -> Measured:
    runs = [run for run in summary["sweeps"]["ce-gd"]["runs"] if run["rank"] == 10]
    ratios, learned = [], []
    for run in runs:
        if run["diverged"] or run["loss_final"] is None:
            return Measured("a rank-10 run diverged", False)
        ratios.append(max(run["loss_final"], 0.0) / run["history"][0]["loss"])
        learned.append(min(u / s for u, s in zip(run["final_mode_strength"], run["singular_values"], strict=False)))
    passed = bool(runs) and max(ratios) <= 1e-4 and min(learned) >= 0.95
    return Measured(f"final/initial loss ≤ {max(ratios):.1g}; every mode ≥ {100 * min(learned):.0f}% learned "
                    f"({len(runs)} seeds)", passed, {"loss_ratio": ratios, "weakest_mode_fraction": learned})


def _adam_plateau(summary: dict[str, Any]) -> Measured:
    scales, steps = _plateau_row(summary, "init-adam")
    finite = [s for s in steps if not math.isnan(s)]
    passed = len(finite) == len(steps) and max(finite) <= 1.5 * min(finite)
    seeds = "; ".join(f"{e:g}: " + "/".join("none" if _missing(x) else f"{x:.0f}" for x in row)
                      for e, row in zip(scales, summary["init"]["init-adam"]["plateau_steps"], strict=True))
    return Measured(f"median first plateau (steps) at ε = {', '.join(f'{e:g}' for e in scales)}: "
                    f"{_fmt_steps(steps)} (per seed, ε {seeds})", passed,
                    {"init_scales": scales, "median_plateau_steps": steps})


# -- capability (Olah's diagram, measured) --------------------------------------------------------


def _rows(summary: dict[str, Any], n: int) -> list[dict[str, Any]]:
    return [r for r in summary["rows"] if r["n_features"] == n]


def _geometry_floor(summary: dict[str, Any]) -> Measured:
    rows = _rows(summary, 20)
    sparse = [r for r in rows if r["feature_probability"] <= 0.1 and r["n_hidden"] <= 8]
    full = [r for r in rows if r["n_hidden"] == 20]
    floor = [r["fraction"]["geometry"] for r in sparse if r["fraction"]["geometry"] is not None]
    capable = [r["capability"] / r["loss_trivial"] for r in sparse if r["loss_trivial"]]
    top = [r["fraction"]["geometry"] for r in full if r["fraction"]["geometry"] is not None]
    if not floor or not top:
        return Measured("models missing", False)
    passed = max(floor) <= 0.01 and min(top) >= 0.95
    return Measured(f"F_geometry ≤ {max(floor):.2f} at m ≤ 8 (C/L_trivial {min(capable):.2f}–{max(capable):.2f}); "
                    f"{min(top):.2f}–{max(top):.2f} at m = n", passed,
                    {"max_F_geometry_sparse_narrow": max(floor), "min_F_geometry_full_width": min(top)})


def _no_valley(summary: dict[str, Any]) -> Measured:
    worst, where = 0.0, None
    for n in sorted({r["n_features"] for r in summary["rows"]}):
        for p in sorted({r["feature_probability"] for r in _rows(summary, n)}):
            line = sorted((r for r in _rows(summary, n) if r["feature_probability"] == p), key=lambda r: r["n_hidden"])
            ic = [r["interpretable_capability"]["geometry"] for r in line]
            for i in range(1, len(ic)):
                fall = max(ic[:i]) - ic[i]
                if fall > worst:
                    worst, where = fall, (n, p, line[i]["n_hidden"])
    passed = worst <= 1e-3
    at = "" if where is None else f" (n = {where[0]}, p = {where[1]:g}, m = {where[2]})"
    return Measured(f"largest fall of IC_geometry as m grows: {worst:.4f}{at}", passed,
                    {"largest_fall": worst, "at": where})


def _sae_fills(summary: dict[str, Any]) -> Measured:
    sparse = [r["fraction"]["sae"] for r in summary["rows"]
              if r["feature_probability"] <= 0.03 and r["fraction"]["sae"] is not None]
    if not sparse:
        return Measured("models missing", False)
    return Measured(f"F_sae {min(sparse):.2f}–{max(sparse):.2f} over {len(sparse)} models at p ≤ 0.03",
                    min(sparse) >= 0.9, {"min_F_sae": min(sparse)})


# -- myopia (Krueger, Maharaj & Leike 2020; the seed's scheme) -----------------------------------


def _arm(summary: dict[str, Any], name: str) -> dict[str, Any]:
    return next(a for a in summary["arms"] if a["name"] == name)


def _hidden_incentive(summary: dict[str, Any]) -> Measured:
    alone, pbt = (_arm(summary, name)["p_cooperate"] for name in ("krueger/q-nostate", "krueger/q-nostate-pbt1-last"))
    return Measured(f"p_cooperate {alone:.3f} alone, {pbt:.3f} under PBT (K = 1)", pbt >= 0.5 and alone <= 0.15,
                    {"alone": alone, "pbt": pbt})


def _swap(summary: dict[str, Any]) -> Measured:
    swapped = _arm(summary, "krueger/q-nostate-pbt1-last-swap")["p_cooperate"]
    return Measured(f"p_cooperate {swapped:.3f} with PBT and swapping", swapped <= 0.1, {"swap": swapped})


def _scheme(summary: dict[str, Any]) -> Measured:
    pbt = _arm(summary, "scheme-1life/q-nostate-pbt1-last")["p_cooperate"]
    return Measured(f"p_cooperate {pbt:.3f} under PBT (K = 1), index shown", pbt <= 0.1, {"pbt": pbt})


def _shutdown(summary: dict[str, Any]) -> Measured:
    shown, hidden = (_arm(summary, name)["p_shutdown_at_horizon"] for name in ("scheme/reinforce", "hidden/reinforce"))
    return Measured(f"shuts down at E* in {shown:.1%} of lives (index shown), {hidden:.1%} (hidden)",
                    shown >= 0.95 and hidden <= 0.1, {"shown": shown, "hidden": hidden})


# Short citations: the report's study sections give the full titles.
ELHAGE = "Elhage et al. 2022"  # Toy Models of Superposition
JERMYN = "Jermyn & Shlegeris 2022"  # Multi-Component Learning and S-Curves (LessWrong post and comments)
KRUEGER = "Krueger, Maharaj & Leike 2020"  # Hidden incentives for auto-induced distributional shift

FINDINGS: tuple[Finding, ...] = (
    Finding("intro-pentagon", "At the sparsest setting all five features share two dimensions as a regular pentagon.",
            f"{ELHAGE}, §1 figure", "intro", "pentagon; every D_i = 2/5 ± 0.05", _pentagon, "feature_vectors"),
    Finding("intro-pca-dense", "Dense inputs give the PCA-like solution: the two most important features on "
            "orthogonal axes, the rest dropped.", f"{ELHAGE}, §1 figure", "intro",
            "2 features represented; D_1, D_2 ≥ 0.95; the rest ≤ 0.05", _pca, "feature_vectors"),
    Finding("intro-sparsity-packs", "As features get sparser the model packs more of them into each dimension.",
            f"{ELHAGE}, §1 and §3", "intro", "features per dimension ≤ 1.05 at p = 1, ≥ 2.3 at p = 0.05",
            _packing, "dimensions_per_feature"),
    Finding("intro-sticky-dimensions", "Dimensions per feature m/‖W‖²_F sticks at 1 and at 1/2 as sparsity grows, "
            "instead of falling smoothly.", f"{ELHAGE}, §3 (the sticky points of dimensionality)", "intro",
            "≥ 2 consecutive probabilities within 0.03 of 1, and ≥ 2 within 0.03 of 1/2 (a smooth fall "
            "from 1 to 2/5 drops 0.067 a step)", _sticky,
            "dimensions_per_feature"),
    Finding("intro-elicitation-gap", "Evaluated at every 4× of compute, a brief fine-tune (elicitation) finds "
            "loss the raw evaluation misses during training, and none to speak of at the end.",
            "the seed's comment on evaluations (every 4× of compute, with elicitation)", "intro",
            "elicited never worse than raw by > 1% (the relative standard error toylab holds reported losses "
            "to); largest gap before the last "
            "evaluation", _elicitation, "loss_history"),
    Finding("importance-dense-pca", "With dense features (p = 1) the model keeps the m most important features, "
            "each alone in its own dimension, and drops the rest.", f"{ELHAGE}, §2 figure (dense column); the "
            "reference notebook's n = 100, m = 20 experiment", "importance",
            "exactly m = 20 kept; features 0–19 each D_i ≥ 0.95; every other D_i ≤ 0.05", _importance_pca,
            "norms_and_interference"),
    Finding("importance-superposition-grows", "As features get sparser the model keeps more of them, sharing "
            "directions in superposition.", f"{ELHAGE}, §2 figure; the reference notebook's n = 100, m = 20 "
            "experiment", "importance", "sharing a direction (D_i < 0.95): 0 at p = 1, ≥ m/2 = 10 at p = 0.05; "
            "kept ≥ 1.5 m = 30 at p = 0.05", _importance_grows, "norms_and_interference"),
    Finding("importance-important-alone", "The more important features keep their own dimension while the less "
            "important ones share.", f"{ELHAGE}, §2 figure (which features share, by importance)", "importance",
            "at every p with both: median importance rank of the features alone < that of the features sharing",
            _importance_order, "norms_and_interference"),
    Finding("dimensionality-sticky", "Dimensions per feature m/‖W‖²_F sticks at 1 and at 1/2 as sparsity grows "
            "(n = 200, m = 20, equal importance).", f"{ELHAGE}, §6 \"Feature Dimensionality\" figure", "dimensionality",
            "≥ 3 consecutive probabilities (a factor ≥ 1.37 in 1/(1−S)) within 0.05 of 1, and ≥ 3 within 0.05 of 1/2",
            _sticky_at("rows", 3, 0.05), "dimensions_per_feature"),
    Finding("dimensionality-fractions", "Feature dimensionalities D_i cluster at the fractions of the polytopes "
            "the features form: 1, 3/4, 2/3, 1/2, 2/5, 3/8.", f"{ELHAGE}, §6 \"Feature Dimensionality\" figure",
            "dimensionality", "≥ 60% of represented features (best seeds, every p where m/‖W‖²_F < 0.95) within 0.02 "
            "of a fraction (a uniform spread over [0.3, 1] would put 29% there)", _fractions, "feature_dimensionality"),
    Finding("scurves-staircase", "Gradient descent on MSE learns one singular value at a time: a drop per mode.",
            f"{JERMYN}; Saxe et al. 2014", "scurves",
            "2 drops at rank 2 in every seed; rank-4 modes half-learned in order", _staircase, "rank_sweep_mse_gd"),
    Finding("scurves-ce-two-plateaus", "With cross-entropy loss a rank-2 target shows two plateaus.",
            f"{JERMYN}, comments", "scurves", "2 drops at rank 2 in every seed (gradient descent, lr·d²)",
            _drops("ce-gd", 2, 2), "rank_sweep_ce_gd"),
    Finding("scurves-adam-one-drop", "Adam learns the two modes of a rank-2 target almost together: one drop "
            "where gradient descent has two.", f"{JERMYN}, comments (\"with Adam most phenomena stay\")", "scurves",
            "1 drop at rank 2 in every seed (Adam, lr 1e-3)", _drops("mse-adam", 2, 1), "rank_sweep_mse_adam",
            agrees=False, disagreement="The comments say that with Adam most phenomena stay; the staircase does "
            "not: Adam half-learns the two modes of a rank-2 target at steps 25 and 32, in one drop."),
    Finding("scurves-ce-rank10", "With cross-entropy at small logits (gradient descent at lr·d²) a rank-10 target "
            "is fitted exactly, every mode learned.", f"{JERMYN}, comments (\"rank 10 had trouble reaching the "
            "zero-loss solution\")", "scurves", "final loss ≤ 1e-4 × initial; every mode ≥ 95% of its singular value",
            _ce_rank10, "rank_sweep_ce_gd", agrees=False,
            disagreement="The comment saw rank 10 struggle to reach zero loss; toylab's rank-10 runs reach it "
            "(singular values 1–4 at d = 100, so logits of order s/d; the comment's logit scale is not stated)."),
    Finding("scurves-gd-plateau-init", "With gradient descent the first plateau at full rank is set by the init "
            "scale: it grows as ε falls and is absent at ε = 0.1.", f"{JERMYN}, comments (\"at full rank the "
            "plateau is short or absent\")", "scurves",
            "median plateau strictly longer at each smaller ε ≤ 1e-2; at ε = 0.1 absent or < half of ε = 1e-2's",
            _gd_plateau, "plateau_vs_init", agrees=False,
            disagreement="The comment ties the short plateau to full rank; toylab finds it is the init scale: at "
            "ε ≤ 1e-2 the full-rank plateau is there, ln(s_max/u₀)/(2 s_max) long."),
    Finding("scurves-adam-plateau-init", "With Adam the full-rank plateau returns, and lasts about the same number "
            "of steps at every init scale.", f"{JERMYN}, comments (\"with Adam it returns\")", "scurves",
            "found at every ε; longest ≤ 1.5 × shortest", _adam_plateau, "plateau_vs_init"),
    Finding("capability-geometry-floor", "By geometry, sparse superposition models are uninterpretable until they "
            "are as wide as they have features, although they are already capable.",
            "Olah's interpretability-vs-capability diagram, measured (n = 20 family)", "capability",
            "F_geometry ≤ 0.01 for p ≤ 0.1, m ≤ 8; ≥ 0.95 at m = n", _geometry_floor, "capability"),
    Finding("capability-no-valley", "Interpretable capability by geometry never falls as the model widens: a floor "
            "at zero, not a valley.", "Olah's diagram (which draws a valley)", "capability",
            "no fall of IC_geometry larger than 0.001 (units of loss) as m grows", _no_valley, "capability",
            agrees=False, disagreement="Olah's diagram draws a valley between simple and crisp models; measured "
            "by geometry, interpretable capability sits on a floor at 0 and rises only at m = n."),
    Finding("capability-sae-fills", "A sparse autoencoder recovers the features of sparse models that geometry "
            "cannot read.", "SAE literature (Bricken et al. 2023), measured on toy models", "capability",
            "F_sae ≥ 0.9 for every model at p ≤ 0.03", _sae_fills, "capability"),
    Finding("myopia-hidden-incentive", "Population-based training makes a myopic Q-learner cooperate: a hidden "
            "incentive for cross-epoch optimisation.", f"{KRUEGER}, unit test 1", "myopia",
            "p_cooperate ≥ 0.5 under PBT (K = 1), ≤ 0.15 alone", _hidden_incentive, "cooperation"),
    Finding("myopia-swap-removes", "Environment swapping removes the hidden incentive.", f"{KRUEGER}, §4",
            "myopia", "p_cooperate ≤ 0.1 with PBT and swapping", _swap, "cooperation"),
    Finding("myopia-scheme-index", "Showing the epoch index (the seed's scheme) removes PBT's hidden incentive for "
            "the same agent.", "the seed's comment (epoch index, tail, shutdown)", "myopia",
            "p_cooperate ≤ 0.1 under PBT (K = 1)", _scheme, "cooperation"),
    Finding("myopia-shutdown-at-horizon", "With the index shown, a myopic learner shuts down at E*; with it hidden "
            "it does not.", "the seed's comment", "myopia", "≥ 95% of lives at E* (shown), ≤ 10% (hidden)",
            _shutdown, "shutdown_epochs"),
)


def select(ids: Iterable[str] | None = None) -> list[Finding]:
    """The findings named by ``ids`` (all when None), in registry order; an unknown id is refused."""
    if ids is None:
        return list(FINDINGS)
    wanted = list(ids)
    known = {f.id for f in FINDINGS}
    unknown = [i for i in wanted if i not in known]
    if unknown or not wanted:
        raise ConfigError(f"--only {','.join(wanted)!r}: unknown finding {', '.join(map(repr, unknown)) or '(none)'}; "
                          f"available: {', '.join(f.id for f in FINDINGS)}")
    return [f for f in FINDINGS if f.id in wanted]


def evaluate(finding: Finding, summary: dict[str, Any]) -> Measured:
    """``finding.check(summary)``; a summary the check cannot read (a smaller run lacking an arm or a
    rank) fails the finding with the reason instead of stopping the report."""
    try:
        return finding.check(summary)
    except (KeyError, StopIteration, IndexError, TypeError, ValueError) as exc:
        return Measured(f"not measured: {type(exc).__name__}: {exc}", False)


# -- the linear model, the phase diagrams, the rescaling check, Saxe's drop times, the schedule ---


def _linear(summary: dict[str, Any]) -> Measured:
    """Every probability's best seed: ≤ 1.02 features per dimension, the top m features kept."""
    m = summary["study"]["n_hidden"]
    rows = sorted(summary["best"], key=lambda b: -b["feature_probability"])
    if any(b["diverged"] for b in rows):
        return Measured("a probability's every seed diverged", False)
    fpd = [b["features_per_dimension"] for b in rows]
    kept = [min(b["feature_dimensionality"][:m]) for b in rows]
    dropped = [max(b["feature_dimensionality"][m:]) for b in rows]
    passed = max(fpd) <= 1.02 and min(kept) >= 0.95 and max(dropped) <= 0.05
    span = f"{rows[-1]['feature_probability']:.3g}–{rows[0]['feature_probability']:.3g}"
    return Measured(f"features per dimension {min(fpd):.3f}–{max(fpd):.3f} over p = {span}; top {m}: D_i ≥ "
                    f"{min(kept):.3f}; the rest: D_i ≤ {max(dropped):.3f}", passed,
                    {"feature_probability": [b["feature_probability"] for b in rows], "features_per_dimension": fpd,
                     "min_D_top": min(kept), "max_D_rest": max(dropped)})


def _grid(summary: dict[str, Any], key: str) -> list[list[Any]]:
    """A per-cell field as rows (relative importance) × columns (density), as ``cells`` lists them."""
    cols = len(summary["densities"])
    values = [cell.get(key) for cell in summary["cells"]]
    return [values[i: i + cols] for i in range(0, len(values), cols)]


def _n2m1(summary: dict[str, Any]) -> Measured:
    """Away from a closed-form boundary every cell's trained phase is the closed form's."""
    trained, expected = _grid(summary, "phase"), _grid(summary, "closed_form_phase")
    near = near_boundary(expected)
    wrong = [(i, j) for i, row in enumerate(trained) for j, phase in enumerate(row) if phase != expected[i][j]]
    away = [(i, j) for i, j in wrong if not near[i][j]]
    denser = sum(trained[i][j] == "superposition" for i, j in wrong)
    cells = len(summary["cells"])
    enough = summary["cells_away_from_boundary"] >= cells // 4  # not vacuous: a quarter of the grid is away
    return Measured(f"{summary['agreement']:.1%} of {cells} cells agree; away from a boundary "
                    f"{summary['agreement_away_from_boundary']:.0%} of {summary['cells_away_from_boundary']}; "
                    f"{len(wrong)} disagree next to a boundary, {denser} of them superposed where the closed form "
                    "is not", not away and enough,
                    {"agreement": summary["agreement"], "agreement_away_from_boundary":
                     summary["agreement_away_from_boundary"], "disagreeing_cells": wrong,
                     "disagreeing_away_from_boundary": away, "disagreeing_superposed": denser})


def _n3m2_candidates(p: float, r: float) -> dict[str, float]:
    """Expected loss of the best candidate of each phase of the extra feature, n = 3, m = 2
    (importances 1, 1, r), in the task's units (mean over the 3 features of I_i (x_i − x̂_i)²).

    With v = p/3 − p²/4 (a dropped feature's variance) and p²/6 per unit of importance for an
    antipodal pair (:mod:`toylab.theory.phases`): dropping the extra feature costs r·v/3; giving
    it a dimension costs min(v/3, p²/9) (the other dimension keeps one of the two, or holds
    both as an antipodal pair); pairing it antipodally with one of them costs (1 + r)·p²/18.
    The triangle of all three is not among the candidates.
    """
    v = p / 3 - p * p / 4
    return {"not_represented": r * v / 3, "dedicated": min(v / 3, p * p / 9), "superposition": (1 + r) * p * p / 18}


def _n3m2(summary: dict[str, Any]) -> Measured:
    """The three predictions of the candidate solutions that win by a margin (see the finding)."""
    trained = _grid(summary, "phase")
    losses = _grid(summary, "loss")
    densities, importances = summary["densities"], summary["relative_importances"]
    sparse, dense = densities.index(min(densities)), densities.index(max(densities))
    misses = []

    def miss(i: int, j: int, want: str) -> str:
        p, r = densities[j], importances[i]
        expected = _n3m2_candidates(p, r)
        loss = "no loss" if _missing(losses[i][j]) else f"loss {losses[i][j]:.3g}"
        return (f"p = {p:g}, r = {r:.3g}: {trained[i][j]}, not {want} ({loss}; candidates: {want} "
                f"{expected[want]:.3g}, {trained[i][j]} {expected.get(trained[i][j], math.nan):.3g})")

    for i, r in enumerate(importances):
        want_dense = "not_represented" if r < 1 else "dedicated"
        if trained[i][dense] != want_dense:
            misses.append(miss(i, dense, want_dense))
        if r < 1 and trained[i][sparse] != "superposition":
            misses.append(miss(i, sparse, "superposition"))
        if r > 1:
            misses += [f"p = {p:.3g}, r = {r:.3g}: dropped" for j, p in enumerate(densities)
                       if trained[i][j] == "not_represented"]
    counts = {phase: sum(row.count(phase) for row in trained) for phase in ("not_represented", "dedicated",
                                                                             "superposition")}
    sparse_high = [trained[i][sparse] for i, r in enumerate(importances) if r > 1]
    tally = ", ".join(f"{n} {phase}" for phase, n in counts.items()).replace("_", " ")
    value = ("as predicted" if not misses else "; ".join(misses)) + \
        f" ({tally}; at p = {densities[sparse]:g}, r > 1: {', '.join(map(str, sparse_high))})"
    return Measured(value, not misses, {"misses": misses, "counts": counts, "sparsest_r_above_1": sparse_high})


def _rescale(summary: dict[str, Any]) -> Measured:
    """W_in → c·W_in: predictions fixed; Elhage's measure × c²; D_i and the invariant one fixed."""
    c = summary["scales"]
    one = min(range(len(c)), key=lambda k: abs(math.log(c[k])))
    fpd, inv, D = (summary[k] for k in ("features_per_dimension", "features_per_dimension_invariant",
                                        "mean_feature_dimensionality"))
    if any(_missing(v) for v in (*fpd, *inv, *D)):
        return Measured("the classifier diverged", False)
    scaling = max(abs(f / (fpd[one] * x * x) - 1) for f, x in zip(fpd, c, strict=True))
    drift = max(max(abs(v / vs[one] - 1) for v in vs) for vs in (inv, D))
    changed = max(summary["predictions_changed"])
    tms_loss = summary["tms_loss"]
    lowest = c[tms_loss.index(min(tms_loss))]
    passed = changed == 0 and scaling <= 1e-4 and drift <= 1e-4 and min(tms_loss) == tms_loss[one]
    return Measured(f"{changed} test predictions changed at c = {min(c):g}–{max(c):g}; features per dimension "
                    f"×{fpd[-1] / fpd[0]:.4g} (c² ratio {(c[-1] / c[0]) ** 2:.4g}); mean D_i and the invariant "
                    f"measure move ≤ {drift:.1e}; autoencoder loss lowest at c = {lowest:g}",
                    passed, {"predictions_changed": changed, "c_squared_relative_error": scaling,
                             "invariant_relative_drift": drift, "accuracy": summary["accuracy"][one]})


def _saxe_drops(summary: dict[str, Any]) -> Measured:
    """Each mode's half-learned step against Saxe's t½ = ln(s/u₀ − 1)/(2s), u₀ = ε²·d/2.

    A random init (entries N(0, ε²), width d) starts mode k on the growing direction
    a + b (a = F₁ᵀu_k, b = F₂v_k, each N(0, ε² I_d)), whose strength aᵀb grows as
    |a + b|²/4 · e^{2st}: u₀ = E|a + b|²/4 = ε² d/2, the balanced solution's from then on.
    """
    sweep = summary["sweeps"]["mse-gd"]
    lr, d = sweep["lr"], summary["study"]["d"]
    ratios, misses, checked = [], [], 0
    for run in sweep["runs"]:
        if run["rank"] > 10:
            continue
        if run["diverged"] or run["mode_half_steps"] is None:
            misses.append(f"rank {run['rank']} seed {run['seed']} diverged")
            continue
        steps = [h["t"] / lr for h in run["history"]]
        u0 = run["init_scale"] ** 2 * d / 2
        for s, measured in zip(run["singular_values"], run["mode_half_steps"], strict=True):
            theory = drop_time(s, u0) / lr
            checked += 1
            if _missing(measured):
                misses.append(f"rank {run['rank']}, s = {s:.3g}: not half learned (Saxe: step {theory:.0f})")
                continue
            # The evaluations bracket the crossing: it lies in (before, measured].
            before = max((step for step in steps if step < measured), default=0.0)
            ratios.append(measured / theory)
            if measured < 0.9 * theory or before > 1.1 * theory:
                misses.append(f"rank {run['rank']}, s = {s:.3g}: step {measured:.0f} (Saxe {theory:.0f})")
    value = (f"{checked} modes (ranks 1–10, every seed): measured/Saxe {min(ratios):.3f}–{max(ratios):.3f}"
             if ratios else "no mode measured") + (f"; outside: {'; '.join(misses[:3])}" if misses else "")
    return Measured(value, bool(ratios) and not misses,
                    {"modes": checked, "min_ratio": min(ratios, default=math.nan),
                     "max_ratio": max(ratios, default=math.nan), "misses": misses})


def _schedule(summary: dict[str, Any]) -> Measured:
    """Every best seed's evaluations are exactly the planned ones: 0, then each 4× of compute, then the end."""
    factor = summary["study"]["train"]["compute_factor"]
    wrong, ratios, planned = [], [], []
    for best in summary["best"]:
        history = best["history"]
        steps = history[-1]["step"]  # the run's length (``reproduce all --steps`` shortens it)
        planned = [(p.step, p.trigger) for p in planned_evaluations(steps, compute_factor=factor)]
        seen = [(row["step"], row["trigger"]) for row in history]
        if seen != planned or any(row.get("elicited_loss") is None for row in history):
            wrong.append(best["feature_probability"])
        per_step = [row["flops"] / row["step"] for row in history if row["step"]]
        ratios += [b["flops"] / a["flops"] for a, b in zip(history[1:], history[2:], strict=False)
                   if "compute" in b["trigger"]]
        if per_step and max(per_step) - min(per_step) > 1e-9 * max(per_step):
            wrong.append(best["feature_probability"])
    exact = all(abs(r - factor) <= 1e-9 * factor for r in ratios)
    return Measured(f"{len(summary['best'])} best seeds evaluated at steps {', '.join(str(s) for s, _ in planned)}, "
                    f"each elicited; compute ratio between consecutive compute-triggered evaluations "
                    f"{min(ratios, default=math.nan):.6g}–{max(ratios, default=math.nan):.6g}",
                    not wrong and bool(ratios) and exact,
                    {"planned_steps": [s for s, _ in planned], "off_schedule": wrong, "compute_ratios": ratios})


STUDY_FINDINGS: tuple[Finding, ...] = (
    Finding("linear-never-superposes", "A linear model (no ReLU on the output) never superposes: at every "
            "sparsity it keeps the m most important features, orthogonally, and drops the rest.",
            f"{ELHAGE}, §2 (the linear model) and §3", "linear",
            "features per dimension ≤ 1.02 at every p; D_1, D_2 ≥ 0.95; D_3–D_5 ≤ 0.05 (the optimum: 1, 1 "
            "and 0; the tolerances of intro-pca-dense, for finite training)", _linear, "dimensions_per_feature"),
    Finding("phase-n2m1-closed-form", "The trained n = 2, m = 1 phase diagram is the closed form's: drop the "
            "extra feature, give it the dimension, or superpose it antipodally.", f"{ELHAGE}, §4; "
            "toylab.theory.phases (exact expected losses of the three candidates)", "phase-n2m1",
            "every cell away from a closed-form boundary agrees (≥ a quarter of the cells away); next to one, "
            "where the boundary falls inside the cell, disagreement is allowed", _n2m1, "phase_n2m1"),
    Finding("phase-n3m2-diagram", "With 3 features in 2 dimensions the extra feature is dropped when dense and "
            "less important, kept in a dimension of its own when more important, and superposed when sparse and "
            "less important.", f"{ELHAGE}, §4 (the n = 3, m = 2 diagram); predictions from the candidate "
            "solutions' expected losses", "phase-n3m2",
            "p = 1: not represented for every r < 1, dedicated for every r > 1 (the winner beats the next "
            "candidate by ≥ r or 1/r in loss); p = 0.01, r < 1: superposition (≥ 18× less loss than dropping "
            "it, ≥ 1.2× less than a dimension of its own beside an antipodal pair); r > 1: never dropped "
            "(dropping costs r× a dimension's); no cell may miss", _n3m2, "phase_n3m2"),
    Finding("rescale-invariance-digits", "Multiplying a bias-free ReLU classifier's layer by c changes no "
            "prediction but multiplies features per dimension by c², while D_i and the scale-invariant measure "
            "stay; in the autoencoder the scale matters (the loss is lowest at the trained c = 1).",
            "the seed's critique of features per dimension and its reply", "rescale",
            "0 predictions changed at c = 0.1–10; features per dimension within 1e-4 of c² × its c = 1 value; mean "
            "D_i and the invariant measure within 1e-4 (float32); autoencoder loss lowest at c = 1",
            _rescale, "rescale_check"),
    Finding("scurves-saxe-drop-times", "Gradient descent on MSE learns each mode when Saxe's closed form says: "
            "half-learned at t½ = ln(s/u₀ − 1)/(2s).", "Saxe, McClelland & Ganguli 2014 (toylab.theory.saxe); "
            f"{JERMYN}", "scurves",
            "every mode of ranks 1–10, every seed: the half-learned step within 10% of Saxe's (gradient descent "
            "vs flow ≤ 4% at lr·s ≤ 0.08, the random init's u₀ ≈ ε²d/2 ± 3% in t½), up to one evaluation "
            "interval",
            _saxe_drops, "rank_sweep_mse_gd"),
    Finding("intro-compute-schedule", "Training is evaluated, with elicitation, at every 4× of compute: steps 0, "
            "1, 4, 16, …, and at the end.", "the seed's comment on evaluations (every 4× of compute, with "
            "elicitation)", "intro", "every best seed's evaluations exactly the planned steps and triggers, each "
            "elicited; compute ratio between compute-triggered evaluations 4 (to 1e-9)", _schedule,
            "loss_history"),
)
FINDINGS = FINDINGS + STUDY_FINDINGS
