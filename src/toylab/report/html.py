"""The report of ``toylab reproduce all``: one static HTML file, its figures beside it.

No script and no framework: a stylesheet in the page, the figures as ``<img>`` of the study
folders' SVGs (relative paths, so the folder reads offline and can be zipped and sent). First a
summary table (finding, source, expected, measured, pass/fail; disagreements with the source
marked), then a section per study: its findings, its figures, the command that reruns it, its
run time and the machine it ran on.
"""

from __future__ import annotations

import datetime
import re
from html import escape
from pathlib import Path
from typing import Any

from toylab.io import atomic_write

__all__ = ["render", "write"]

STUDY_TITLES = {
    "intro": "Toy Models of Superposition: the introduction figure (Elhage et al. 2022, §1)",
    "scurves": "Multi-Component Learning and S-Curves (Jermyn & Shlegeris 2022, post and comments)",
    "capability": "Interpretable capability against capability (Olah's diagram, measured)",
    "myopia": "Hidden incentives for auto-induced distributional shift (Krueger, Maharaj & Leike 2020) "
              "and the epoch-index scheme",
    "importance": "Toy Models of Superposition: superposition grows with sparsity (the notebook's n = 100, m = 20 "
                  "experiment, Elhage et al. 2022, §2)",
    "dimensionality": "Toy Models of Superposition: feature dimensionality (the notebook's n = 200, m = 20 "
                      "experiment, Elhage et al. 2022, §6)",
}
STUDY_TITLES.update({
    "linear": "Toy Models of Superposition: the introduction figure with a linear model (Elhage et al. 2022, §2–3)",
    "phase-n2m1": "The phase change: 2 features in 1 dimension, trained and in closed form (Elhage et al. 2022, §4)",
    "phase-n3m2": "The phase change: 3 features in 2 dimensions (Elhage et al. 2022, §4)",
    "rescale": "Rescaling a layer: features per dimension against the scale-invariant measures "
               "(digits, the seed's critique and its reply)",
})

STYLE = """
:root { --ink: #1b1f24; --muted: #5a6270; --rule: #d8dde3; --pass: #1a7f37; --fail: #c62828;
        --warn: #9a6700; --bg-pass: #e9f6ec; --bg-fail: #fdecea; --bg-warn: #fff6e0; }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 1180px; padding: 28px 36px 60px; color: var(--ink); background: #fff;
       font: 15px/1.5 "Source Sans 3", "Helvetica Neue", Arial, sans-serif; }
h1 { font-size: 26px; margin: 0 0 4px; letter-spacing: -0.01em; }
h2 { font-size: 20px; margin: 40px 0 6px; padding-top: 14px; border-top: 2px solid var(--ink); }
h3 { font-size: 15px; margin: 18px 0 6px; color: var(--muted); text-transform: uppercase; letter-spacing: .04em; }
p.lede { color: var(--muted); margin: 0 0 18px; }
.counts { display: flex; gap: 14px; margin: 14px 0 22px; }
.count { padding: 8px 14px; border-radius: 6px; font-weight: 600; }
.count.pass { background: var(--bg-pass); color: var(--pass); }
.count.fail { background: var(--bg-fail); color: var(--fail); }
.count.warn { background: var(--bg-warn); color: var(--warn); }
.count.meta { background: #f1f3f5; color: var(--muted); font-weight: 400; }
table { border-collapse: collapse; width: 100%; font-size: 13.5px; }
th { text-align: left; font-weight: 600; border-bottom: 2px solid var(--ink); padding: 6px 8px; }
td { border-bottom: 1px solid var(--rule); padding: 6px 8px; vertical-align: top; }
td.id { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12.5px; white-space: nowrap; }
td.src { color: var(--muted); font-size: 12.5px; max-width: 220px; }
.badge { display: inline-block; min-width: 44px; text-align: center; padding: 1px 8px; border-radius: 10px;
         font-weight: 700; font-size: 12px; }
.badge.pass { background: var(--bg-pass); color: var(--pass); }
.badge.fail { background: var(--bg-fail); color: var(--fail); }
.disagree { display: block; margin-top: 3px; color: var(--warn); font-size: 12.5px; }
.disagree::before { content: "≠ source: "; font-weight: 700; }
dl.meta { display: grid; grid-template-columns: 110px 1fr; gap: 2px 12px; margin: 8px 0 14px; font-size: 13.5px; }
dl.meta dt { color: var(--muted); }
dl.meta dd { margin: 0; }
code { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12.5px; background: #f3f4f6;
       padding: 1px 5px; border-radius: 3px; }
.figures { display: grid; grid-template-columns: repeat(auto-fill, minmax(520px, 1fr)); grid-auto-flow: dense;
           gap: 18px; }
figure { margin: 0; border: 1px solid var(--rule); border-radius: 6px; padding: 8px; background: #fff; }
figure.wide { grid-column: 1 / -1; }
figure img { width: 100%; height: auto; display: block; }
figcaption { font-size: 12.5px; color: var(--muted); margin-top: 4px; font-family: ui-monospace, Menlo, monospace; }
.error { background: var(--bg-fail); color: var(--fail); padding: 10px 14px; border-radius: 6px;
         font-family: ui-monospace, Menlo, monospace; font-size: 12.5px; white-space: pre-wrap; }
a { color: #0b5cad; text-decoration: none; } a:hover { text-decoration: underline; }
footer { margin-top: 40px; color: var(--muted); font-size: 12.5px; }
"""


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def _badge(passed: bool) -> str:
    return '<span class="badge pass">pass</span>' if passed else '<span class="badge fail">fail</span>'


def _summary_table(findings: list[dict[str, Any]]) -> str:
    rows = []
    for f in findings:
        claim = escape(f["claim"])
        if not f["agrees"] and f["disagreement"]:
            claim += f'<span class="disagree">{escape(f["disagreement"])}</span>'
        rows.append(
            f'<tr><td class="id"><a href="#{escape(f["study"])}">{escape(f["id"])}</a></td><td>{claim}</td>'
            f'<td class="src">{escape(f["source"])}</td><td>{escape(f["expected"])}</td>'
            f'<td>{escape(f["measured"])}</td><td>{_badge(f["passed"])}</td></tr>')
    return ('<table class="summary"><thead><tr><th>finding</th><th>claim</th><th>source</th><th>expected</th>'
            '<th>measured</th><th></th></tr></thead><tbody>' + "".join(rows) + "</tbody></table>")


def _aspect(svg: Path) -> float:
    """Width over height of a matplotlib SVG, from its root element's ``width``/``height`` (pt)."""
    head = svg.read_text(errors="replace")[:2000] if svg.is_file() else ""
    size = re.search(r'<svg[^>]*\bwidth="([\d.]+)pt"[^>]*\bheight="([\d.]+)pt"', head)
    return float(size.group(1)) / float(size.group(2)) if size else 1.0


def _study_section(study: dict[str, Any], findings: list[dict[str, Any]], folder: Path | None) -> str:
    name = study["study"]
    mine = [f for f in findings if f["study"] == name]
    parts = [f'<section id="{escape(name)}"><h2>{escape(STUDY_TITLES.get(name, name))}</h2>']
    parts.append('<dl class="meta">'
                 f'<dt>command</dt><dd><code>{escape(study["command"])}</code></dd>'
                 f'<dt>run time</dt><dd>{_minutes(study["seconds"])}'
                 f'{" (read back from an earlier run)" if study.get("resumed") else ""}, finished {escape(study["finished"])}</dd>'
                 f'<dt>machine</dt><dd>{escape(study["machine"])}</dd>'
                 f'<dt>run folder</dt><dd><a href="{escape(study["folder"])}/summary.json">{escape(study["folder"])}/</a></dd>'
                 '</dl>')
    if study["error"]:
        parts.append(f'<div class="error">study failed: {escape(study["error"])}</div>')
    parts.append("<h3>findings</h3><table><thead><tr><th>finding</th><th>expected</th><th>measured</th><th></th>"
                 "</tr></thead><tbody>" + "".join(
                     f'<tr><td class="id">{escape(f["id"])}</td><td>{escape(f["expected"])}</td>'
                     f'<td>{escape(f["measured"])}</td><td>{_badge(f["passed"])}</td></tr>' for f in mine)
                 + "</tbody></table>")
    shown = [stem for stem in study["figures"] if any(f["figure"] == study["figures"][stem] for f in mine)]
    shown += [stem for stem in study["figures"] if stem not in shown]  # the findings' figures first
    if shown:
        parts.append('<h3>figures</h3><div class="figures">' + "".join(
            f'<figure{_wide(folder, study["figures"][stem])}><img src="{escape(study["figures"][stem])}" alt="{escape(stem)}" loading="eager">'
            f'<figcaption>{escape(stem)}</figcaption></figure>' for stem in shown) + "</div>")
    parts.append("</section>")
    return "".join(parts)


def _wide(folder: Path | None, figure: str) -> str:
    """A row of panels (wider than 2.2:1) spans the page instead of shrinking into one column."""
    return ' class="wide"' if folder is not None and _aspect(folder / figure) > 2.2 else ""


def render(result: dict[str, Any], folder: Path | None = None) -> str:
    """The report page for :func:`toylab.report.runner.run_all`'s result; ``folder`` (where the
    page goes) lets wide figures span the page."""
    findings, studies = result["findings"], result["studies"]
    disagreements = sum(not f["agrees"] for f in findings)
    machines = sorted({s["machine"] for s in studies})
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    total = sum(s["seconds"] for s in studies)
    counts = (f'<div class="counts"><span class="count pass">{result["passed"]} passed</span>'
              f'<span class="count {"fail" if result["failed"] else "meta"}">{result["failed"]} failed</span>'
              f'<span class="count warn">{disagreements} disagree with their source</span>'
              + (f'<span class="count fail">{result["errors"]} studies failed to run</span>' if result["errors"] else "")
              + f'<span class="count meta">{len(studies)} studies, {_minutes(total)} of training</span></div>')
    body = [
        "<h1>toylab: published findings, reproduced</h1>",
        f'<p class="lede">Each finding is checked against its study\'s result; the command in each study\'s '
        f"section reruns it. Generated {when}; trained on {escape('; '.join(machines))}.</p>",
        counts, _summary_table(findings),
        *(_study_section(study, findings, folder) for study in studies),
        "<footer>Rerun everything with <code>toylab reproduce all</code> (finished studies are read back, "
        "not retrained); one finding with <code>toylab reproduce all --only ID</code>. "
        "Checks and tolerances: <code>toylab/experiments/findings.py</code>.</footer>",
    ]
    return ('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>toylab findings: {result['passed']}/{len(findings)} passed</title>"
            f"<style>{STYLE}</style></head><body>" + "\n".join(body) + "</body></html>\n")


def write(path: str | Path, result: dict[str, Any]) -> Path:
    """Write :func:`render`'s page to ``path`` (atomically); the figures are referenced relative to it."""
    page = render(result, Path(path).parent)
    return atomic_write(Path(path), lambda f: f.write(page.encode()))
