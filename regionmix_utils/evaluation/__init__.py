"""Evaluations of trained runs, one module each, through one registry and one evaluate
path (``registry``); the built-in ones register themselves as they load, as a plugin's do."""

# Attacks first: they are the paper's evaluations, and tables list kinds in this order.
from regionmix_utils.evaluation import registry, robustness  # isort: split

from regionmix_utils.evaluation import calibration, corruptions, ood, recalibration

__all__ = ["calibration", "corruptions", "ood", "recalibration", "registry", "robustness"]
