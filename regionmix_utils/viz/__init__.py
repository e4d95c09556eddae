"""Figures and widgets for the notebooks, the demo and the report, one module per topic."""

# ruff: noqa: F401, I001 (names re-exported for the notebooks, grouped by module)
from regionmix_utils.viz.ablations import (AblationExplorer, ablation_overview, ce_figure,
                                           lam_mode_figure, parameter_figure)  # fmt: skip
from regionmix_utils.viz.claims import claims_forest, seed_planner_figure
from regionmix_utils.viz.evaluation import (attack_examples, cam_figure, comparison_figure,
                                            corruption_figure, eps_curves, ood_figure,
                                            reliability_figure)  # fmt: skip
from regionmix_utils.viz.mixing import (MixingExplorer, beta_figure, every_mix, mixing_figure,
                                        mixing_story, tile_table)  # fmt: skip
from regionmix_utils.viz.training import LiveCurves, training_curves
