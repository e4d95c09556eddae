"""Figures and widgets for the notebooks and the demo (matplotlib; no side effects on
import), one module per topic: ``mixing``, ``training``, ``ablations``, ``evaluation``.
Everything public is re-exported here."""

from regionmix_utils.viz.ablations import AblationExplorer, ablation_overview
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
from regionmix_utils.viz.training import LiveCurves, training_curves

__all__ = [
    "AblationExplorer",
    "LiveCurves",
    "MixingExplorer",
    "ablation_overview",
    "adversarial_examples",
    "beta_figure",
    "cam_figure",
    "comparison_figure",
    "corruption_figure",
    "every_mix",
    "mixing_figure",
    "mixing_story",
    "reliability_figure",
    "soft_label_bars",
    "tile_map",
    "tile_table",
    "training_curves",
]
