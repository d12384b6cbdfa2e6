"""The anonymity report renders (Markdown, self-contained HTML, JSON), its figures are the
run's own, its answers follow the attack verdicts, and ``mpcactors analyze`` writes it."""

from __future__ import annotations

import json

import numpy as np
from html.parser import HTMLParser

import pytest
from click.testing import CliRunner

from mpcactors.cli import main
from mpcactors.analysis import attacks, report, variants
from mpcactors.analysis.disclosures import leave_one_out_influence, plan_disclosures
from mpcactors.analysis.views import record_run
from mpcactors.plan import Analysis, Describe, Lasso, Plan
from mpcactors.protocol.steps import STEP_NAMES
from mpcactors.protocol.roster import DEFAULT_DATA_PARTIES, Roster
from mpcactors.testing import fast_config, tables_for

HOSPITAL = DEFAULT_DATA_PARTIES[0]
ROLES = Roster().members

ID_SPACE = 20_000

#: Two descriptions that count chronic_conditions over different levels (the plan warns), and a lasso.
PLAN = Plan("two descriptions and a model", (
    Analysis("cohort", Describe(("age", "gp_visits"), (("chronic_conditions", (1, 2, 3)),)), ("hospital", "insurer")),
    Analysis("cohort-b", Describe((), (("chronic_conditions", (1, 3)),)), ("insurer",)),
    Analysis("days", Lasso("hospital_days", 0.1, ("age", "ejection_fraction", "gp_visits", "chronic_conditions")),
             ("hospital",)),
))


@pytest.fixture(scope="module")
def tables():
    return tables_for(120, 0.6, seed=2, id_space=ID_SPACE)


@pytest.fixture(scope="module")
def honest(tables):
    hospital, insurer = tables
    run = record_run(hospital, insurer, fast_config(hospital, insurer, lasso=False), id_space=ID_SPACE)
    return run, attacks.run_all(run)


@pytest.fixture(scope="module")
def unmasked(tables):
    hospital, insurer = tables
    run = record_run(hospital, insurer, fast_config(hospital, insurer, lasso=False),
                     variant=variants.forward_unmasked(), id_space=ID_SPACE)
    return run, attacks.run_all(run)


@pytest.fixture(scope="module")
def written(honest, unmasked, tmp_path_factory):
    run, results = honest
    control, control_results = unmasked
    document = report.build_report(run, results, attacks.disclosures(run),
                                   controls=[(control, [r for r in control_results if r.name == "masked_value_linking"])],
                                   plan=plan_disclosures(run, PLAN, leave_one_out=10, seed=1))
    paths = report.write_report(document, tmp_path_factory.mktemp("report"))
    return document, paths


def test_json_has_an_entry_per_step_and_party_and_every_attack(written, honest):
    _, paths = written
    run, results = honest
    document = json.loads(paths["json"].read_text())
    assert sorted((e["step"], e["party"]) for e in document["steps"]) == sorted(
        (s, p) for s in range(1, 10) for p in ROLES)
    assert all(set(e["questions"]) == {"single out", "link", "infer"} for e in document["steps"])
    assert [(a["name"], a["success_rate"]) for a in document["attacks"]] == [(r.name, r.success_rate) for r in results]
    # this run stopped after step 7 (lasso=False): step 8 is listed, marked not reached
    assert {e["reached"] for e in document["steps"] if e["step"] == 8} == {False}
    assert {e["reached"] for e in document["steps"] if e["step"] <= 7} == {True}
    # ... and ended with the confirmation (step 9), where each party received only the
    # two digests of an outcome it already holds
    confirm = [e for e in document["steps"] if e["step"] == 9]
    assert {e["reached"] for e in confirm} == {True}
    assert all({r["kind"] for r in e["received"]} == {"done"} for e in confirm)
    # and the report says so, instead of repeating step 7's answers about shares long deleted
    for e in confirm:
        assert e["questions"]["single out"]["answer"] == e["questions"]["link"]["answer"] == "no", e["questions"]
        assert "deleted before step 9" in e["questions"]["link"]["why"]


def test_figures_match_the_run_they_came_from(written, honest):
    _, paths = written
    run, _ = honest
    document = json.loads(paths["json"].read_text())
    assert document["run"]["intersection_size"] == run.simulation.intersection_size
    assert document["run"]["rows"] == {role: len(run.tables[role]) for role in ("hospital", "insurer")}
    disclosed = {d["item"]: d["value"] for d in document["disclosures"]}
    assert disclosed["intersection size m"] == run.simulation.intersection_size
    # bytes per step: the report, the transcript and the transports' own counters agree
    by_step = {int(k): v for k, v in document["bytes"]["by_step"].items()}
    assert by_step == run.transcript.bytes_by_step()
    for step, size in by_step.items():
        assert sum(e["bytes_sent"] for e in document["steps"] if e["step"] == step) == size
        assert sum(run.simulation.parties[r].steps[step].bytes_sent for r in ROLES
                   if step in run.simulation.parties[r].steps) == size
    assert document["bytes"]["total"] == sum(by_step.values())
    assert "whole id space" in document["run"]["dictionary_searched"]


def test_answers_follow_the_attack_verdicts(written, unmasked):
    document, _ = written
    def answer(doc, step, party, question):
        return next(e for e in doc["steps"] if e["step"] == step and e["party"] == party)["questions"][question]

    assert answer(document, 6, HOSPITAL, "link")["answer"] == "no"
    assert "masked_value_linking/hospital/step-6" in answer(document, 6, HOSPITAL, "link")["evidence"]
    run, results = unmasked
    broken = report.build_report(run, results, attacks.disclosures(run))
    assert broken["run"]["protocol"] == "forward_unmasked"
    assert answer(broken, 6, HOSPITAL, "link")["answer"] == "YES"
    assert answer(broken, 6, HOSPITAL, "infer")["answer"] == "YES"
    assert any("single party learnt something" in line for line in broken["summary"])
    assert [c["caught"] for c in document["controls"]] == [True, True]


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attributes.extend(attrs)

    def handle_data(self, data):
        self.text.append(data)


def test_html_is_self_contained_and_says_what_the_markdown_says(written):
    document, paths = written
    page = paths["html"].read_text()
    parsed = _Collect()
    parsed.feed(page)
    assert "style" in parsed.tags
    assert not {"script", "link", "img", "iframe"} & set(parsed.tags)
    assert not [a for a in parsed.attributes if a[0] in ("src", "href")]
    assert "http://" not in page and "https://" not in page
    text = " ".join(parsed.text)
    markdown = paths["md"].read_text()
    for step in range(1, 10):
        heading = f"Step {step}: {STEP_NAMES[step]}"
        assert heading in text and heading in markdown
    for line in document["summary"]:
        assert line in text and line in markdown
    for a in document["attacks"]:
        assert a["id"] in text and a["id"].replace("|", "\\|") in markdown


@pytest.mark.slow
def test_analyze_command_writes_the_three_files(tmp_path):
    out = tmp_path / "analysis"
    result = CliRunner().invoke(main, ["analyze", "--rows", "40", "--id-space", str(ID_SPACE), "--no-controls",
                                       "--min-intersection", "5", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert {p.name for p in out.iterdir()} == {"report.md", "report.html", "report.json"}
    document = json.loads((out / "report.json").read_text())
    assert document["run"]["completed"] and document["run"]["key_bits"] == 2048
    assert {e["reached"] for e in document["steps"]} == {True}
    names = {a["name"] for a in document["attacks"]}
    assert {"ttp_dictionary_attack", "masked_value_linking", "membership_inference", "ttp_side_channel_inference",
            "coalition_reconstruction", "coalition_membership"} <= names
    assert any(d["item"] == "the lasso model" for d in document["disclosures"])
    by_step = {int(k): v for k, v in document["bytes"]["by_step"].items()}
    for step, size in by_step.items():
        assert sum(e["bytes_sent"] for e in document["steps"] if e["step"] == step) == size
    assert f"all {ID_SPACE:,} nine-digit ids" in document["run"]["dictionary_searched"]
    assert "wrote" in result.output


def test_analyze_refuses_the_process_executor(tmp_path):
    result = CliRunner().invoke(main, ["analyze", "--executor", "process", "--out", str(tmp_path / "x")])
    assert result.exit_code != 0
    assert "inline or thread" in result.output


# ---- the HTML in a real browser -------------------------------------------------------------------

VIEWPORT = 1280

#: Measures the laid-out page and writes the figures into the DOM, which --dump-dom prints.
_MEASURE = """<script>
addEventListener("load", () => {
  const width = document.documentElement.clientWidth;
  const wide = [];
  for (const el of document.body.querySelectorAll("*")) {
    const box = el.getBoundingClientRect();
    if (box.right > width + 0.5 || box.left < -0.5 || el.scrollWidth > el.clientWidth + 1 && el.clientWidth > 0)
      wide.push(el.tagName + ":" + (el.textContent || "").slice(0, 60));
  }
  const text = document.body.innerText;
  const markdown = (text.match(/\\*\\*[^*]+\\*\\*|(^|[\\s(])\\*[^\\s*][^*]*\\*(?=[\\s.,;:)]|$)|`[^`]+`|\\|---/gm) || []);
  const out = document.createElement("pre");
  out.id = "measured";
  out.textContent = JSON.stringify({scrollWidth: document.documentElement.scrollWidth, clientWidth: width,
                                    wide: wide.slice(0, 20), markdown: markdown.slice(0, 20)});
  document.body.appendChild(out);
});
</script>"""


def _chromium() -> str:
    import shutil

    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:  # a failure, not a skip: .ci/run installs it (see the README's test command)
        pytest.fail("chromium is not installed: the HTML report is checked in a real browser; install it with "
                    "'apt-get install -y chromium' (.ci/run does this when it is missing)")
    return found


def render_in_chromium(page: str, tmp_path) -> dict:
    """Lay ``page`` out in headless Chromium at 1280 px and return the measurements the
    injected script took (the script is added to a copy; the report itself has none)."""
    import re
    import subprocess

    copy = tmp_path / "measured.html"
    copy.write_text(page.replace("</body>", _MEASURE + "</body>"), encoding="utf-8")
    done = subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
         f"--user-data-dir={tmp_path / 'profile'}", f"--window-size={VIEWPORT},900", "--hide-scrollbars",
         "--virtual-time-budget=3000", "--dump-dom", copy.as_uri()],
        capture_output=True, text=True, timeout=60,
    )
    match = re.search(r'<pre id="measured">(.*?)</pre>', done.stdout, re.S)
    assert match, f"chromium printed no measurements (exit {done.returncode}): {done.stderr[-2000:]}"
    import html as html_module

    return json.loads(html_module.unescape(match.group(1)))


def test_the_html_fits_1280_px_and_shows_no_markdown_in_a_real_browser(written, tmp_path):
    """At 1280 px nothing is wider than the viewport (the step tables wrap instead of
    scrolling sideways) and the visible text has no Markdown left as typed (``*not*``)."""
    _, paths = written
    page = paths["html"].read_text()
    measured = render_in_chromium(page, tmp_path)
    assert measured["clientWidth"] <= VIEWPORT
    assert measured["scrollWidth"] <= VIEWPORT, measured
    assert measured["wide"] == [], measured["wide"]
    assert measured["markdown"] == [], measured["markdown"]
    assert "<em>not</em>" in page


def test_the_browser_check_sees_overflow_and_markdown(tmp_path):
    """The control: a page with a wide unbreakable table and a literal ``*not*`` fails both checks."""
    page = ("<!DOCTYPE html><html><body><table><tr><td style='white-space:nowrap'>" + "x" * 400
            + "</td></tr></table><p>whose data the party is *not* meant to see</p></body></html>")
    measured = render_in_chromium(page, tmp_path)
    assert measured["scrollWidth"] > VIEWPORT and measured["wide"]
    assert measured["markdown"] == ["*not*"] or any("*not*" in m for m in measured["markdown"])


# ---- per analysis of the study plan ---------------------------------------------------------------


def test_each_analysis_lists_what_the_manifest_opens_to_whom(written, honest):
    document, paths = written
    run, _ = honest
    section = document["plan"]
    assert [a["analysis"] for a in section["analyses"]] == ["cohort", "cohort-b", "days"]
    for entry in section["analyses"]:
        declared = [o for o in PLAN.manifest() if o.analysis == entry["analysis"]]
        assert [(o["output"], tuple(o["shape"])) for o in entry["opened"]] == [(o.output, o.shape) for o in declared]
        for o, d in zip(entry["opened"], declared, strict=True):
            expected = set(d.recipients) | (set(run.roster.compute_parties) if d.control else set())
            assert set(o["to"]) == expected
    markdown, page = paths["md"].read_text(), paths["html"].read_text()
    assert "Per analysis of the study plan" in markdown and "Per analysis of the study plan" in page
    assert "count:chronic_conditions" in markdown and "count:chronic_conditions" in page


def test_the_differencing_attack_is_shown_on_the_run_and_the_plan_warning_is_reported(written, honest):
    """[1, 2, 3] and [1, 3]: level 2 (fewer than min_cell persons in this run) is suppressed in
    'cohort', and 'cohort-b' opens 'other' (level 2 plus the rest), so other minus other is
    level 2's count: recovered exactly, checked against the plaintext join."""
    document, paths = written
    run, _ = honest
    column = run.joined_values()[:, run.config.joined_columns.index("chronic_conditions")] / 2**run.config.params.frac_bits
    actual = int((column.round() == 2).sum())
    assert actual < PLAN.min_cell  # the precondition: level 2 is a small cell in this run
    (shown,) = document["plan"]["differencing"]
    assert shown["shown"] and shown["exact"]
    assert {"analysis": "cohort", "level": "2", "recovered": actual, "actual": actual} in shown["recovered"]
    for name in ("cohort", "cohort-b"):
        entry = next(a for a in document["plan"]["analyses"] if a["analysis"] == name)
        assert entry["warnings"] and all("differencing" in w for w in entry["warnings"])
        assert shown["text"] in entry["measured"]
    assert "The plan validator warns" in paths["md"].read_text() and "The plan validator warns" in paths["html"].read_text()


def test_the_model_s_leave_one_out_influence_is_reported(written):
    document, _ = written
    days = next(a for a in document["plan"]["analyses"] if a["analysis"] == "days")
    loo = days["leave_one_out"]
    assert loo["rows_tried"] == 10 and len(loo["max_change"]) == 4
    assert all(c > 0 for c in loo["max_change"]) and "one person" in days["measured"][0]


def test_leave_one_out_influence_matches_the_closed_form_of_least_squares():
    """With a negligible penalty the lasso is least squares, whose leave-one-out change has a
    closed form: ``(X^T X)^-1 x_i e_i / (1 - h_ii)`` on centred data (DFBETA). alpha = 1e-9
    moves the coefficients by about 1e-9, so 1e-6 relative is far above that bias."""
    g = np.random.default_rng(3)
    x = g.normal(size=(40, 3)) * [1.0, 5.0, 0.2]
    y = x @ [0.5, -0.1, 2.0] + g.normal(size=40)
    measured = leave_one_out_influence(x, y, 1e-9)
    design = np.column_stack([np.ones(40), x])
    inverse = np.linalg.inv(design.T @ design)
    residual = y - design @ (inverse @ design.T @ y)
    leverage = np.einsum("ij,jk,ik->i", design, inverse, design)
    dfbeta = (inverse @ design.T * (residual / (1 - leverage))).T[:, 1:]
    np.testing.assert_allclose(measured["max_change"], np.abs(dfbeta).max(axis=0), rtol=1e-6)
