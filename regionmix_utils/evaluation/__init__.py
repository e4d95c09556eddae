"""Evaluations of trained runs: robustness (attacks), Grad-CAM++ maps, calibration and
common corruptions, one module each; each writes records through the Run record."""
