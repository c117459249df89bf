"""The README's study table is the committed results file, verbatim: a figure edited by hand, or a results file
regenerated without updating the README (or the reverse), fails here. Regenerate both with ``make study``."""

from __future__ import annotations

import re
from pathlib import Path

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
