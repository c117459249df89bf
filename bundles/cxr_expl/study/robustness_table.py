"""The robustness table of the study: one row per (variant of the shortcut, supervised setting), from the stages' files.

Each variant of the synthetic set is a stage of ``plan.json`` (marker kind, train correlation, how ``test_shifted``
breaks it). This script reads only what ``make study`` committed beside each stage (``recovery.csv`` per seed and
``summary.csv``) and writes one markdown table: the shortcut's cost at lambda = 0 (balanced accuracy on the reference
split minus on the shifted split, pooled over the lambda = 0 seeds), the shifted split's value at lambda = 0 and for
the setting (mean over seeds), the share of the cost won back by the setting (mean and worst seed), the same for AUC,
the in-distribution AUC change, and the confounder metric on the shifted split (mean absolute change of the
probability when the marker is filled) at lambda = 0 and for the setting. Where the lambda = 0 cost is small, the
recovery ratio divides by a small noisy number: read the shifted values beside it. Run by ``make
study`` after the plan::

    python bundles/cxr_expl/study/robustness_table.py --results bundles/cxr_expl/study/results \
        --out bundles/cxr_expl/study/results/robustness.md
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from monai_explain.apps.study.recovery import MIN_SHORTCUT_COST
from monai_explain.apps.study.report import markdown_table

# (variant shown in the table, stage folder of the results). The default set is the headline stage.
VARIANTS = (
    ("corner marker, 95/5, independent shift (default set)", "full_cam_dice"),
    ("corner marker, 95/5, independent shift (default set)", "full_cam_energy"),
    ("edge ruler, 95/5, independent shift", "robustness_ruler"),
    ("edge ruler, 95/5, independent shift", "robustness_ruler_dice"),
    ("text tag, 95/5, independent shift", "robustness_text"),
    ("corner marker, 90/10, independent shift", "robustness_9010"),
    ("corner marker, 95/5, reversed shift (5/95)", "robustness_reversed"),
    ("corner marker, 95/5, reversed shift (5/95)", "robustness_reversed_dice"),
)
SHIFTED = "test_shifted"


def stage_rows(variant: str, stage_dir: Path) -> pd.DataFrame:
    """One row per supervised setting of a stage: recovery (mean, worst seed), cost, AUC change and confounder."""
    rec = pd.read_csv(stage_dir / "recovery.csv")
    summary = pd.read_csv(stage_dir / "summary.csv")
    per_metric = rec.pivot_table(index=["setting", "class"], columns="metric",
                                 values=["recovery", "shortcut_cost", "reference_change", "seed", "baseline_shifted",
                                         "setting_shifted"],
                                 aggfunc={"recovery": ["mean", "min"], "shortcut_cost": "first",
                                          "reference_change": "mean", "seed": "count", "baseline_shifted": "first",
                                          "setting_shifted": "mean"},
                                 dropna=False)  # fmt: skip  # keep a metric whose ratios are all NaN (cost too small)
    per_metric.columns = ["_".join(str(p) for p in c) for c in per_metric.columns]
    out = pd.DataFrame(
        {
            "variant": variant,
            "stage": stage_dir.name,
            "seeds": per_metric["seed_count_balanced_accuracy"].astype(int),
            "lambda0_bacc_cost": per_metric["shortcut_cost_first_balanced_accuracy"],
            "lambda0_shifted_bacc": per_metric["baseline_shifted_first_balanced_accuracy"],
            "shifted_bacc": per_metric["setting_shifted_mean_balanced_accuracy"],
            "bacc_recovery_mean": per_metric["recovery_mean_balanced_accuracy"],
            "bacc_recovery_min": per_metric["recovery_min_balanced_accuracy"],
            "auc_recovery_mean": per_metric["recovery_mean_auc"],
            "auc_recovery_min": per_metric["recovery_min_auc"],
            "lambda0_auc_cost": per_metric["shortcut_cost_first_auc"],
            "lambda0_shifted_auc": per_metric["baseline_shifted_first_auc"],
            "shifted_auc": per_metric["setting_shifted_mean_auc"],
            "reference_auc_change": per_metric["reference_change_mean_auc"],
        }
    ).reset_index()
    conf = summary[(summary["split"] == SHIFTED) & (summary["metric"] == "confounder_change")]
    conf_by_setting = conf.set_index(["setting", "class"])["mean"]
    baseline = conf[conf["lambda"] == 0].set_index("class")["mean"]
    out["confounder_change_lambda0"] = out["class"].map(baseline)
    out["confounder_change"] = [conf_by_setting.get((s, c), float("nan")) for s, c in zip(out["setting"], out["class"])]
    return out


def robustness_table(results: Path) -> pd.DataFrame:
    """All variants whose stage folder exists under ``results`` (missing stages are reported, not skipped silently)."""
    frames, missing = [], []
    for variant, stage in VARIANTS:
        if (results / stage / "recovery.csv").is_file():
            frames.append(stage_rows(variant, results / stage))
        else:
            missing.append(stage)
    if missing:
        raise FileNotFoundError(f"no recovery.csv for the stages {missing} under {results}: run `make study` first.")
    return pd.concat(frames, ignore_index=True)


def to_markdown(table: pd.DataFrame) -> str:
    """The table as markdown (the study's :func:`markdown_table`: 3 decimals, NaN as ``n/a``) under a short header."""
    first = ["variant", "setting", "class"]
    shown = table[first + [c for c in table.columns if c not in first]]
    return "\n".join(
        [
            "# Robustness of the shortcut recovery across variants of the synthetic set",
            "",
            (
                "One row per supervised setting and variant (a stage of `plan.json`): `lambda0_bacc_cost` is the balanced "
                "accuracy the lambda = 0 models lose on `test_shifted` against `test` (pooled over their seeds); recovery is "
                "the share of that cost won back (mean and worst seed), for balanced accuracy and AUC, `n/a` where the cost "
                f"is below {MIN_SHORTCUT_COST} (too small to measure with these test sets); `*_shifted_*` are the "
                "values on `test_shifted` at lambda = 0 and for the setting (read them where the cost is small: the ratio "
                "then divides by a small noisy number); "
                "`reference_auc_change` is the in-distribution AUC change; `confounder_change` is the mean absolute change of "
                "the predicted probability on `test_shifted` when the marker box is filled (lambda = 0 and the setting). "
                "Written by `bundles/cxr_expl/study/robustness_table.py` (`make study`) from each stage's `recovery.csv` and "
                "`summary.csv`."
            ),
            "",
            markdown_table(shown),
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, required=True, help="the plan's results folder")
    parser.add_argument("--out", type=Path, required=True, help="markdown file to write")
    args = parser.parse_args()
    args.out.write_text(to_markdown(robustness_table(args.results)))
    print(args.out.read_text())


if __name__ == "__main__":
    main()
