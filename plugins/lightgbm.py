"""LightGBM: a global gradient-boosted tree model over the panel (see ``_tabular``).

Each boosting round is scored on the validation window (MAPE in original units) through
LightGBM's own ``feval`` and callback mechanism: the score is reported for pruning and drives
LightGBM's ``early_stopping`` callback. ``lightgbm`` is imported only when a model is fit.
"""

from __future__ import annotations

from mlforecast_cli import ModelSpec, hookimpl

from ._params import TREE_PARAMS
from ._tabular import TREES_INSTALL, TreeForecaster


class LightGBMForecaster(TreeForecaster):
    """``lightgbm.train`` on the tabular windows; rounds in ``n_estimators``."""

    huber_objective = "huber"

    def _booster_params(self) -> dict:
        p = self.params
        return {
            "objective": self.objective(),
            "learning_rate": float(p.get("learning_rate", 0.05)),
            "num_leaves": int(p.get("num_leaves", 31)),
            "max_depth": int(p.get("max_depth", -1)),
            "min_data_in_leaf": int(p.get("min_child_samples", 20)),
            "lambda_l1": float(p.get("reg_alpha", 0.0)),
            "lambda_l2": float(p.get("reg_lambda", 0.0)),
            "feature_fraction": float(p.get("colsample_bytree", 1.0)),
            "bagging_fraction": float(p.get("subsample", 1.0)),
            "bagging_freq": 1 if float(p.get("subsample", 1.0)) < 1.0 else 0,
            "min_data_per_group": 10,
            "cat_smooth": 10.0,
            "alpha": self.huber_delta,  # used by the huber objective only
            "metric": "None",
            "seed": self.seed,
            "deterministic": True,
            "force_row_wise": True,
            "num_threads": self.threads,
            "verbosity": -1,
        }

    def _fit_one(self, X, y, valid, monitor, rounds, categorical):
        import lightgbm as lgb

        params = self._booster_params()
        train = lgb.Dataset(X, y, categorical_feature=categorical, free_raw_data=False)
        if valid is None:
            booster = lgb.train(params, train, num_boost_round=rounds)
            return booster, rounds
        dvalid = lgb.Dataset(valid.X, valid.y, reference=train, categorical_feature=categorical)

        def feval(preds, _data):
            mape = ("mape", valid.score(preds), False)
            if self.stop_on == "loss":  # stop on the first, report the second
                return [("loss", valid.loss(preds), False), mape]
            return mape

        def report(env) -> None:
            value = env.evaluation_result_list[-1][2]  # the MAPE
            if not monitor.round(env.iteration - env.begin_iteration + 1, value):
                monitor.reraise()

        report.order = 25  # after evaluation, before early_stopping (order 30)
        callbacks = [report]
        if self.early_stopping:
            callbacks.append(
                lgb.early_stopping(self.patience, first_metric_only=True, verbose=False)
            )
        booster = lgb.train(
            params,
            train,
            num_boost_round=rounds,
            valid_sets=[dvalid],
            valid_names=["valid"],
            feval=feval,
            callbacks=callbacks,
        )
        best = int(booster.best_iteration) or booster.current_iteration()
        return booster, best

    def _predict_one(self, model, X):
        best = model.best_iteration or None
        return model.predict(X, num_iteration=best, num_threads=self.threads)


@hookimpl
def register_models(register):
    register(
        ModelSpec(
            name="lightgbm",
            summary="LightGBM gradient boosting: one global model, horizon step as a feature",
            family="tree",
            factory="mlforecast_cli.plugins.lightgbm:LightGBMForecaster",
            space="mlforecast_cli.spaces:lightgbm.yaml",
            requires=("lightgbm",),
            install=TREES_INSTALL,
            extra_params=TREE_PARAMS,
        )
    )
