"""CatBoost: a global gradient-boosted (oblivious) tree model over the panel (see ``_tabular``).

Each boosting round is scored on the validation window (MAPE in original units) by a custom
``eval_metric``; an ``after_iteration`` callback reports it for pruning and CatBoost's own
early stopping (``use_best_model``) watches it. ``catboost`` is imported only when a model is
fit.
"""

from __future__ import annotations

from mlforecast_cli import ModelSpec, hookimpl

from ._params import TREE_PARAMS
from ._tabular import TREES_INSTALL, TreeForecaster


class ValidationMAPE:
    """CatBoost custom metric: the MAPE of the validation window's forecasts, in percent.

    CatBoost also evaluates it on the training rows; those calls get 0 (nobody reads them).
    """

    def __init__(self, valid) -> None:
        self.valid = valid
        self.n = len(valid.y)

    def __deepcopy__(self, memo):  # CatBoost deep-copies its parameters; share the data
        return self

    def __reduce__(self):  # a fitted model pickles with the plain metric, not the data
        return (str, ("RMSE",))

    def is_max_optimal(self) -> bool:
        return False

    def evaluate(self, approxes, target, weight):
        import numpy as np

        raw = np.asarray(approxes[0], dtype=np.float64)
        if raw.size != self.n or not np.allclose(np.asarray(target), self.valid.y, atol=1e-4):
            return 0.0, 1.0
        return self.valid.score(raw), 1.0

    def get_final_error(self, error, weight) -> float:
        return error


class CatBoostForecaster(TreeForecaster):
    """``CatBoostRegressor`` on the tabular windows; rounds in ``iterations``."""

    rounds_param = "iterations"
    objective_key = "loss_function"
    default_objective = "RMSE"
    huber_objective = "Huber"

    def _loss(self, name: str) -> str:
        """``Huber`` gets its delta from the units (see ``huber_delta``); others as given."""
        return f"Huber:delta={self.huber_delta}" if name == "Huber" else name

    def _regressor(self, rounds: int, valid):
        from catboost import CatBoostRegressor

        p = self.params
        options = {
            "iterations": rounds,
            "learning_rate": float(p.get("learning_rate", 0.05)),
            "depth": int(p.get("depth", 6)),
            "l2_leaf_reg": float(p.get("l2_leaf_reg", 3.0)),
            "random_strength": float(p.get("random_strength", 1.0)),
            "loss_function": self._loss(self.objective()),
            "bootstrap_type": "Bernoulli",
            "subsample": float(p.get("subsample", 0.8)),
            "rsm": float(p.get("colsample_bylevel", 1.0)),
            "border_count": 254,
            "random_seed": self.seed,
            "thread_count": self.threads,
            "allow_writing_files": False,
            "verbose": False,
        }
        if valid is not None:
            options["eval_metric"] = ValidationMAPE(valid)
            if self.early_stopping:
                options.update(early_stopping_rounds=self.patience, use_best_model=True)
        return CatBoostRegressor(**options)

    def _fit_one(self, X, y, valid, monitor, rounds, categorical):
        import warnings

        model = self._regressor(rounds, valid)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*numba.*")
            if valid is None:
                model.fit(X, y)
                return model, rounds

            class Report:
                def after_iteration(self, info) -> bool:
                    value = info.metrics["validation"]["ValidationMAPE"][-1]
                    return monitor.round(info.iteration, value)  # False stops training

            model.fit(X, y, eval_set=(valid.X, valid.y), callbacks=[Report()])
        monitor.reraise()
        best = model.get_best_iteration()
        return model, (int(best) + 1) if best is not None else int(model.tree_count_)

    def _predict_one(self, model, X):
        return model.predict(X, thread_count=self.threads)


@hookimpl
def register_models(register):
    register(
        ModelSpec(
            name="catboost",
            summary="CatBoost gradient boosting: one global model, horizon step as a feature",
            family="tree",
            factory="mlforecast_cli.plugins.catboost:CatBoostForecaster",
            space="mlforecast_cli.spaces:catboost.yaml",
            requires=("catboost",),
            install=TREES_INSTALL,
            extra_params=TREE_PARAMS,
        )
    )
