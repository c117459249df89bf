"""The README's study table is the committed results file, verbatim: a figure edited by hand, or a results file
regenerated without updating the README (or the reverse), fails here. Regenerate both with ``make study``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from monai_explain.apps.study.plan import HEADLINE_FILE

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bundles" / "cxr_expl" / "study" / "results"
START, END = "<!-- study:headline:start -->", "<!-- study:headline:end -->"


def _quoted(text: str) -> str:
    match = re.search(re.escape(START) + r"\n(.*?)" + re.escape(END), text, flags=re.DOTALL)
    assert match, f"README.md has no {START} ... {END} block"
    return match.group(1)


def test_readme_headline_is_the_results_file():
    assert _quoted((ROOT / "README.md").read_text()) == (RESULTS / HEADLINE_FILE).read_text()


def test_results_index_lists_every_stage_of_the_plan():
    import json

    plan = json.loads((ROOT / "bundles" / "cxr_expl" / "study" / "plan.json").read_text())
    index = (RESULTS / "RESULTS.md").read_text()
    for stage in plan["stages"]:
        assert f"## [{stage['name']}]({stage['name']}/summary.md)" in index
        assert (RESULTS / stage["name"] / "summary.md").is_file(), stage["name"]
    assert "Not run yet." not in index


def _robustness_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("robustness_table", RESULTS.parent / "robustness_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_robustness_table_is_written_from_the_stage_files():
    """``results/robustness.md`` is what the script makes of the committed stage files today (no hand edits), and
    the bundle docs quote it verbatim."""
    script = _robustness_script()
    table = script.robustness_table(RESULTS)
    assert set(table["stage"]) == {stage for _, stage in script.VARIANTS}
    text = script.to_markdown(table)
    assert (RESULTS / "robustness.md").read_text() == text
    docs = (ROOT / "bundles" / "cxr_expl" / "docs" / "README.md").read_text()
    start, end = "<!-- study:robustness:start -->", "<!-- study:robustness:end -->"
    match = re.search(re.escape(start) + r"\n(.*?)" + re.escape(end), docs, flags=re.DOTALL)
    assert match, f"bundles/cxr_expl/docs/README.md has no {start} ... {end} block"
    assert match.group(1) == text[text.index("| variant") :]


def test_robustness_script_names_missing_stages(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"robustness_ruler.*make study"):
        _robustness_script().robustness_table(tmp_path)
