"""Figures and widgets for the notebooks and the demo (matplotlib; no side effects on
import), one module per topic: ``mixing``, ``training``, ``ablations``, ``evaluation``,
``claims``, ``ood``.
Everything public is re-exported here."""

from regionmix_utils.viz.ablations import (
    AblationExplorer,
    ablation_overview,
    ce_figure,
    lam_mode_figure,
    parameter_figure,
)
from regionmix_utils.viz.claims import claims_forest, seed_planner_figure
from regionmix_utils.viz.evaluation import (
    adversarial_examples,
    cam_figure,
    comparison_figure,
    corruption_figure,
    reliability_figure,
)
from regionmix_utils.viz.mixing import (
    MixingExplorer,
    beta_figure,
    every_mix,
    mixing_figure,
    mixing_story,
    soft_label_bars,
    tile_map,
    tile_table,
)
from regionmix_utils.viz.ood import ood_figure
from regionmix_utils.viz.robustness import attack_examples, eps_curves
from regionmix_utils.viz.training import LiveCurves, training_curves

__all__ = [
    "AblationExplorer",
    "LiveCurves",
    "MixingExplorer",
    "ablation_overview",
    "adversarial_examples",
    "attack_examples",
    "beta_figure",
    "cam_figure",
    "ce_figure",
    "claims_forest",
    "comparison_figure",
    "corruption_figure",
    "eps_curves",
    "every_mix",
    "lam_mode_figure",
    "mixing_figure",
    "mixing_story",
    "ood_figure",
    "parameter_figure",
    "reliability_figure",
    "seed_planner_figure",
    "soft_label_bars",
    "tile_map",
    "tile_table",
    "training_curves",
]
