"""A study's search without MLflow or the CLI: the objective on the study's split and the
Optuna study loop, for tests of the search itself (pruning, memory, resumption)."""

from __future__ import annotations


def objective_for(entry, panel, config):
    """The objective of ``config``'s study of ``entry`` on the split a study of it plans."""
    from mlforecast_cli.data.split import split_panel
    from mlforecast_cli.trials.fit import min_train
    from mlforecast_cli.trials.objective import build_objective

    split = split_panel(
        panel, config.horizon, config.cv_windows, min_train=min_train(entry, config.space)
    )
    return build_objective(entry, panel, config, split)


def run_trials(entry, panel, config, n_trials: int, objective=None):
    """Create or resume ``config``'s study and add ``n_trials`` trials to it."""
    from mlforecast_cli.trials.objective import run_study
    from mlforecast_cli.trials.optuna_study import create_study

    objective = objective or objective_for(entry, panel, config)
    study, _ = create_study(config, panel)
    return run_study(objective, study, n_trials=n_trials)
