"""What the report's numbers mean, checked one property at a time: signed differences
never print "-0.00", the tables' significance mark uses the paper's standard error over
its 3 runs, masking flag 4 compares PGD only on the same images, the Holm family holds
the declared claims only, the intervals printed as 95% are 95% intervals, the seeds to
resolve are planned at the family-wise level over the family's size, the fit table's
gap is training minus test accuracy, and a gated study's claims are judged at the
primary ε its pilot chose. Each is recomputed independently (scipy, statsmodels, by
hand) on given data or on the committed bundle."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from regionmix_utils.config import TrainConfig
from regionmix_utils.evaluation.masking import masking_check
from regionmix_utils.report import design_text, fit_table, study_report
from regionmix_utils.results import collect_runs, column_label, compare, paper_tables
from regionmix_utils.runs import Predictions, Run, eps_text, find_runs
from regionmix_utils.study import CPU_GATED, read_plan
from regionmix_utils.tables import _signed

from .conftest import REPO
from .test_results import finished_run, paired_runs

BUNDLE = REPO / CPU_GATED.bundle

# ------------------------------------------------------------------ signed differences


def _check_signed(value: float) -> None:
    text, rounded = _signed(value), round(value, 2)
    assert text != "-0.00" and "+-" not in text and "-+" not in text, (value, text)
    assert text[0] == ("-" if rounded < 0 else "+"), (value, text)
    assert float(text) == rounded, (value, text)


def test_signed_differences_never_print_minus_zero_on_a_grid():
    """Around zero, where -0.004 rounds to -0.0, and over a wide range."""
    for value in np.linspace(-0.02, 0.02, 4001):
        _check_signed(float(value))
    for value in np.random.default_rng(0).normal(0, 50, 2000):
        _check_signed(float(value))
    assert _signed(-0.004) == "+0.00" and _signed(-0.005001) == "-0.01"


@settings(max_examples=300, deadline=None, database=None)
@given(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False))
def test_signed_differences_keep_the_sign_of_the_rounded_value(value):
    _check_signed(value)


# ------------------------------------------------------------------ Tables 1-4


def test_the_tables_mark_a_difference_beyond_two_standard_errors_of_both_means(tmp_path):
    """The paper's std is over its 3 runs: its standard error is std / sqrt(3). Ours
    0.1 over 3 seeds, the paper's Mixup on CIFAR-100 78.10 ± 0.60, Δ = +0.80: two
    combined standard errors are 2 sqrt(0.1²/3 + 0.6²/3) = 0.70 < 0.80, so the cell is
    marked (with the paper's std undivided, 2 sqrt(0.1²/3 + 0.6²) = 1.21, it would not).
    A Δ that rounds to zero from below prints +0.00."""
    for seed, acc in enumerate((78.8, 78.9, 79.0)):  # paper: 78.10 ± 0.60
        finished_run(tmp_path, TrainConfig(dataset="cifar100", method="mixup", seed=seed), acc)
    for seed, acc in enumerate((79.016, 79.026, 79.036)):  # paper: 79.03 ± 0.30
        finished_run(tmp_path, TrainConfig(dataset="cifar100", method="cutmix", seed=seed), acc)
    table1 = paper_tables(collect_runs(tmp_path))[0]
    assert table1.frame.loc["CIFAR-100", ("Mixup (k=1)", "ours")] == "78.90 ± 0.10 (3)"
    assert table1.frame.loc["CIFAR-100", ("Mixup (k=1)", "paper")] == "78.10 ± 0.60"
    assert table1.frame.loc["CIFAR-100", ("Mixup (k=1)", "Δ")] == "+0.80*"
    assert table1.frame.loc["CIFAR-100", ("CutMix", "Δ")] == "+0.00"


# ------------------------------------------------------------------ masking flags


def test_masking_flag_4_compares_pgd_accuracy_on_the_same_images_only():
    """PGD-10 on 1,017 images falls from 5% at 8/255 to 2% at 16/255; on a 40-image
    sample it is 10% at 16/255. The sample's number is not a rise of the 1,017-image
    curve: flag 4 is checked and does not fire. On the same images it would."""

    def pgd(eps: float, accuracy: float, n_images: int) -> dict:
        return {"kind": "pgd", "eps": eps, "steps": 10, "random_start": True, "seed": 0,
                "n_images": n_images, "accuracy": accuracy}  # fmt: skip

    records = [pgd(8 / 255, 5.0, 1017), pgd(16 / 255, 2.0, 1017), pgd(16 / 255, 10.0, 40)]
    assert masking_check(records)["flags"][4] is False
    assert masking_check(list(reversed(records)))["flags"][4] is False
    rising = [pgd(8 / 255, 5.0, 40), pgd(16 / 255, 2.0, 1017), pgd(16 / 255, 10.0, 40)]
    check = masking_check(rising)
    assert check["flags"][4] is True
    assert "10.00% at ε=16/255 > 5.00% at ε=8/255" in check["evidence"][4]


# ------------------------------------------------------------------ paired comparisons


@pytest.fixture(scope="module")
def runs_with_an_unclaimed_metric(tmp_path_factory):
    """``paired_runs`` (Region Mixup above Mixup on clean images by 1.0, 1.5, 2.0 points
    over 3 seeds: the paper's Table 1 claim), plus FGSM at 8/255 (the paper's Table 3
    claim), where they differ by +10, -8, +4 points, and FGSM at 4/255, which no claim
    is about, where they differ by +1.0, -1.0, +0.5 points."""
    root = tmp_path_factory.mktemp("paired")
    paired_runs(root)
    labels = np.arange(2000) % 10
    for run in find_runs(root):
        for eps, extra in ((4 / 255, (20, -20, 10)), (8 / 255, (200, -160, 80))):
            right = 1000 + (0 if run.config.method == "mixup" else extra[run.config.seed])
            predicted = np.where(np.arange(2000) < right, labels, (labels + 1) % 10)
            run.add_evaluation({"kind": "fgsm", "eps": eps, "n_images": 2000,
                                "accuracy": right / 20},
                               Predictions.from_outputs(predicted, labels))  # fmt: skip
    return root


def test_the_holm_family_holds_the_declared_claims_only(runs_with_an_unclaimed_metric):
    """A compared metric without a declared claim gets a p but no Holm p, and is not in
    the family: the two declared claims' Holm p are Holm's over their two p alone."""
    from statsmodels.stats.multitest import multipletests

    comparison = compare(collect_runs(runs_with_an_unclaimed_metric), "region:mixup")
    cells = comparison.cells.set_index("metric")
    claimed, unclaimed = cells.loc[["clean test", "FGSM ε=8/255"]], cells.loc["FGSM ε=4/255"]
    assert (claimed["direction"] == 1).all() and math.isnan(unclaimed["direction"])
    assert math.isnan(unclaimed["p_holm"]) and unclaimed["verdict"] == ""
    expected = multipletests(claimed["p"].to_numpy(), method="holm")[1]
    assert claimed["p_holm"].to_numpy() == pytest.approx(expected)
    # with the unclaimed p in the family, the clean claim's would be 3 p, not 2 p
    assert claimed.loc["clean test", "p_holm"] == pytest.approx(2 * claimed.loc["clean test", "p"])
    assert "Verdicts on 2 declared claim(s)" in comparison.caption
    frame = comparison.frame.set_index("metric")
    assert frame.loc["FGSM ε=4/255", "p Holm"] == ""


def test_seeds_to_resolve_count_the_declared_claims_only(runs_with_an_unclaimed_metric):
    """Of 3 compared metrics 2 are declared claims: an unresolved claim's seeds are
    planned at 0.05 / 2 (statsmodels' ``TTestPower`` on the same inputs: the paper's Δ
    in its setting, the seeds' spread), not at 0.05 / 3."""
    from statsmodels.stats.power import TTestPower

    cells = compare(collect_runs(runs_with_an_unclaimed_metric), "region:mixup").cells
    row = cells.set_index("metric").loc["FGSM ε=8/255"]
    assert row["verdict"] == "not resolved" and row["paper_regime"]
    effect = abs(row["paper_delta"]) / row["seed_sd"]  # 6.56 points over a spread of 9.2
    solved = {m: math.ceil(TTestPower().solve_power(effect_size=effect, alpha=0.05 / m,
                                                    power=0.8)) for m in (2, 3)}  # fmt: skip
    assert solved[2] < solved[3]
    assert row["plan"].startswith(f"about {solved[2]} (range ")


def test_the_intervals_printed_as_95_percent_are_95_percent_intervals(
    runs_with_an_unclaimed_metric,
):
    """The column "95% CI (seeds)" is scipy's 95% t-interval of the per-seed Δ (1.0, 1.5,
    2.0), and "95% CI (these models)" the 95% percentile bootstrap of the test images'
    mean difference, the models held fixed (recomputed with scipy's bootstrap; the
    per-image differences averaged over the seeds: 100 on 20 images, 66.7 on 10, 33.3 on
    10, 0 on the rest). A 90% interval is 15% narrower; the two bootstraps' draws differ
    by about 2%."""
    from scipy import stats

    comparison = compare(collect_runs(runs_with_an_unclaimed_metric), "region:mixup")
    row = comparison.cells.set_index("metric").loc["clean test"]
    seeds = stats.ttest_1samp([1.0, 1.5, 2.0], 0.0).confidence_interval(0.95)
    assert (row["low"], row["high"]) == pytest.approx((seeds.low, seeds.high), abs=1e-9)
    per_image = np.zeros(2000)
    per_image[:20], per_image[20:30], per_image[30:40] = 100, 200 / 3, 100 / 3

    def bootstrap(level: float) -> tuple[float, float]:
        found = stats.bootstrap(
            (per_image,), np.mean, confidence_level=level, batch=4000, n_resamples=20_000,
            method="percentile", random_state=1,
        )  # fmt: skip
        return found.confidence_interval.low, found.confidence_interval.high

    (low, high), (low90, high90) = bootstrap(0.95), bootstrap(0.90)
    width = row["image_high"] - row["image_low"]
    assert width == pytest.approx(high - low, rel=0.06)
    assert width > (high90 - low90) * 1.08  # not a 90% interval
    assert (row["image_low"], row["image_high"]) == pytest.approx((low, high), abs=0.05)
    shown = comparison.frame.set_index("metric").loc["clean test"]
    assert shown["95% CI (seeds)"] == f"[{row['low']:+.2f}, {row['high']:+.2f}]"
    assert shown["95% CI (these models)"] == (
        f"[{row['image_low']:+.2f}, {row['image_high']:+.2f}]"
    )


# ------------------------------------------------------------------ the committed bundle


@pytest.fixture(scope="module")
def bundle():
    """The committed study's bundle (read only)."""
    if not BUNDLE.is_dir():
        pytest.fail(f"{BUNDLE} is missing: the reference study's results are committed")
    return BUNDLE


@pytest.fixture(scope="module")
def reference(bundle):
    """The committed study's report numbers (``study_report``) and its plan."""
    return study_report(CPU_GATED, bundle), read_plan(bundle)


def test_seeds_to_resolve_are_planned_at_the_level_over_the_family_size(reference):
    """Each unresolved claim of its family (the 9 declared together; the 2 added later are
    a family of their own) whose Δ has the claimed sign gets the seeds the paired t-test
    needs to detect the study's 2-point effect at 0.05 / (family size) with 80% power at
    its seeds' spread, and its power at the seeds present: statsmodels' ``TTestPower``
    on the same inputs (at 0.05 it would ask for fewer)."""
    from statsmodels.stats.power import TTestPower

    report, _ = reference
    cells = report.comparison.cells
    sizes = cells["declared"].value_counts()
    assert sorted(sizes.tolist()) == [2, 9]
    planned = cells[cells["plan"].str.startswith("about")]
    assert len(planned) >= 3
    against = cells[cells["plan"].str.startswith("none")]
    assert (np.sign(against["delta"]) != against["direction"]).all() and len(against) >= 3
    for row in cells.itertuples():
        power = TTestPower().power(2.0 / row.seed_sd, row.seeds, 0.05 / sizes[row.declared])
        assert row.power == pytest.approx(power)
    for row in planned.itertuples():
        family = sizes[row.declared]
        effect = 2.0 / row.seed_sd
        solved = TTestPower().solve_power(effect_size=effect, alpha=0.05 / family, power=0.8)
        needed = int(re.match(r"about ([\d,]+) \(range", row.plan)[1].replace(",", ""))
        assert needed == max(2, math.ceil(solved)), row
        at_05 = TTestPower().solve_power(effect_size=effect, alpha=0.05, power=0.8)
        assert math.ceil(at_05) < needed


def test_the_fit_tables_gap_is_training_minus_test_accuracy(bundle, tmp_path):
    """Positive for a run that fits its training images better than the test images:
    recomputed per configuration from every run's final metrics in the bundle (each run
    there fits its training images better), and on a run written here."""
    runs = find_runs(bundle)
    table = fit_table(runs)
    gaps: dict[str, list[float]] = {}
    for run in runs:
        final = run.metrics()[-1]
        gaps.setdefault(column_label(run.config, with_ce=True), []).append(
            final["train_acc"] - final["test_acc"])  # fmt: skip
    assert set(table.index) == set(gaps)
    for label, found in gaps.items():
        mean, sd = table.loc[label, "gap (points)"].split(" ± ")
        assert float(mean) == pytest.approx(np.mean(found), abs=0.005) and float(mean) > 0
        assert float(sd) == pytest.approx(np.std(found, ddof=1), abs=0.005)

    config = TrainConfig(dataset="shapes", method="none", epochs=2)
    run = finished_run(tmp_path, config, 60.0)
    run.write_metrics([*run.metrics()[:-1], {**run.metrics()[-1], "train_acc": 90.0}])
    mine = fit_table([Run(run.path)])
    assert mine.iloc[0].tolist() == ["90.00 ± 0.00", "60.00 ± 0.00", "30.00 ± 0.00"]


def test_the_report_judges_the_claims_at_the_primary_eps_its_pilot_chose(reference):
    """The committed plan chose 2/255, neither the sweep's first ε (1/255) nor 8/255:
    every claim declared at the primary ε is judged on records at 2/255, Tables 3 and 4
    are at 2/255, and the design lists the claims at it."""
    report, plan = reference
    primary = plan["primary_eps"]
    assert primary not in (CPU_GATED.fgsm_eps[0], 8 / 255)
    at = f"ε={eps_text(primary)}"
    cells = report.comparison.cells
    attacked = cells[~cells["metric"].eq("clean test")]
    assert len(attacked) == 4 and attacked["metric"].str.endswith(at).all()
    assert attacked["p"].notna().all()  # evaluated: not "not evaluated: run ..."
    assert not cells["verdict"].str.startswith("not evaluated").any()
    attack_tables = [t for t in report.tables if t.number in (3, 4, 7)]
    assert [t.setting["eps"] for t in attack_tables] == [primary] * 3
    design = design_text(CPU_GATED, plan, report.runs)
    claims = design.split("**Claims**")[1]
    assert claims.count(f"at ε = {eps_text(primary)}") == 4
    assert f"Chosen: ε = {eps_text(primary)}" in design


def test_a_study_without_a_gate_renders_its_design_from_its_definition():
    """No gate and no primary ε: the design names the ε its PGD and Square run at, and the
    noise it computes; a study with a gate and no plan is an error."""
    from regionmix_utils.study import Entry, Study

    study = Study(name="tiny", title="shapes", dataset="shapes", entries=(Entry("none"),),
                  noise_severities=(1, 5), square_eps=4 / 255)  # fmt: skip
    text = design_text(study)
    assert "**The gate.**" not in text and "**The primary ε**" not in text
    assert "Gaussian noise (CIFAR-10-C's parameters, computed) at severities 1, 5;" in text
    assert "PGD-10 (step ε/4, one random start) at ε = 8/255 and Square" in text
    assert "queries at ε = 4/255." in text and "regionmix study tiny" in text
    with pytest.raises(ValueError, match="read_plan"):
        design_text(CPU_GATED)
