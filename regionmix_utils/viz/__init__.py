"""Figures and widgets for the notebooks, the demo and the report, one module per topic."""

from regionmix_utils.viz.ablations import AblationExplorer as AblationExplorer
from regionmix_utils.viz.ablations import ablation_overview as ablation_overview
from regionmix_utils.viz.ablations import ce_figure as ce_figure
from regionmix_utils.viz.ablations import lam_mode_figure as lam_mode_figure
from regionmix_utils.viz.ablations import parameter_figure as parameter_figure
from regionmix_utils.viz.claims import claims_forest as claims_forest
from regionmix_utils.viz.claims import seed_planner_figure as seed_planner_figure
from regionmix_utils.viz.evaluation import attack_examples as attack_examples
from regionmix_utils.viz.evaluation import cam_figure as cam_figure
from regionmix_utils.viz.evaluation import comparison_figure as comparison_figure
from regionmix_utils.viz.evaluation import corruption_figure as corruption_figure
from regionmix_utils.viz.evaluation import eps_curves as eps_curves
from regionmix_utils.viz.evaluation import ood_figure as ood_figure
from regionmix_utils.viz.evaluation import reliability_figure as reliability_figure
from regionmix_utils.viz.mixing import MixingExplorer as MixingExplorer
from regionmix_utils.viz.mixing import beta_figure as beta_figure
from regionmix_utils.viz.mixing import every_mix as every_mix
from regionmix_utils.viz.mixing import mixing_figure as mixing_figure
from regionmix_utils.viz.mixing import mixing_story as mixing_story
from regionmix_utils.viz.mixing import tile_table as tile_table
from regionmix_utils.viz.training import LiveCurves as LiveCurves
from regionmix_utils.viz.training import training_curves as training_curves
