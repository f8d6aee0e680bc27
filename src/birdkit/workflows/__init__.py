"""Whole-pipeline workflows built from the stages: the demo, the sweep, the notebook runner."""
