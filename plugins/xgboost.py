"""XGBoost: a global gradient-boosted tree model over the panel (see ``_tabular``).

Each boosting round is scored on the validation window (MAPE in original units) by a
``custom_metric``; a ``TrainingCallback`` reports it for pruning and XGBoost's own early
stopping watches it. ``xgboost`` is imported only when a model is fit.
"""

from __future__ import annotations

from mlforecast_cli import ModelSpec, hookimpl

from ._params import TREE_PARAMS
from ._tabular import TREES_INSTALL, TreeForecaster


class XGBoostForecaster(TreeForecaster):
    """``xgboost.train`` (hist trees) on the tabular windows; rounds in ``n_estimators``."""

    default_objective = "reg:squarederror"
    huber_objective = "reg:pseudohubererror"

    def _booster_params(self) -> dict:
        p = self.params
        return {
            "objective": self.objective(),
            "eta": float(p.get("learning_rate", 0.05)),
            "max_depth": int(p.get("max_depth", 6)),
            "min_child_weight": float(p.get("min_child_weight", 1.0)),
            "subsample": float(p.get("subsample", 1.0)),
            "colsample_bytree": float(p.get("colsample_bytree", 1.0)),
            "reg_alpha": float(p.get("reg_alpha", 0.0)),
            "reg_lambda": float(p.get("reg_lambda", 1.0)),
            "gamma": float(p.get("gamma", 0.0)),
            "huber_slope": self.huber_delta,  # used by reg:pseudohubererror only
            "tree_method": "hist",
            "max_cat_to_onehot": 16,
            "disable_default_eval_metric": 1,
            "seed": self.seed,
            "nthread": self.threads,
            "verbosity": 0,
        }

    def _matrix(self, X, y, categorical):
        import xgboost as xgb

        types = ["q"] * X.shape[1]
        for k in categorical:
            types[k] = "c"
        return xgb.DMatrix(X, y, feature_types=types, enable_categorical=True, nthread=1)

    def _fit_one(self, X, y, valid, monitor, rounds, categorical):
        import numpy as np
        import xgboost as xgb

        # start from the median label: XGBoost's own estimate is far off for pseudo-Huber
        params = {**self._booster_params(), "base_score": float(np.median(y))}
        dtrain = self._matrix(X, y, categorical)
        if valid is None:
            return xgb.train(params, dtrain, num_boost_round=rounds), rounds
        dvalid = self._matrix(valid.X, valid.y, categorical)

        class Report(xgb.callback.TrainingCallback):
            def after_iteration(self, model, epoch, evals_log) -> bool:
                value = evals_log["valid"]["mape"][-1]
                return not monitor.round(epoch + 1, value)  # True stops training

        booster = xgb.train(
            params,
            dtrain,
            num_boost_round=rounds,
            evals=[(dvalid, "valid")],
            custom_metric=lambda predt, _d: ("mape", valid.score(predt)),
            maximize=False,
            early_stopping_rounds=self.patience if self.early_stopping else None,
            callbacks=[Report()],
            verbose_eval=False,
        )
        monitor.reraise()
        best = getattr(booster, "best_iteration", None)
        return booster, (int(best) + 1) if best is not None else booster.num_boosted_rounds()

    def _predict_one(self, model, X):
        dmatrix = self._matrix(X, None, self._categorical())
        best = getattr(model, "best_iteration", None)
        end = (int(best) + 1) if best is not None else 0
        return model.predict(dmatrix, iteration_range=(0, end))


@hookimpl
def register_models(register):
    register(
        ModelSpec(
            name="xgboost",
            summary="XGBoost gradient boosting: one global model, horizon step as a feature",
            family="tree",
            factory="mlforecast_cli.plugins.xgboost:XGBoostForecaster",
            space="mlforecast_cli.spaces:xgboost.yaml",
            requires=("xgboost",),
            install=TREES_INSTALL,
            extra_params=TREE_PARAMS,
        )
    )
