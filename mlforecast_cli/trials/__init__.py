"""Fitting and scoring one configuration, the Optuna objective and study, the refit, the reference
scores.
"""
