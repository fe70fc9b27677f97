"""Random forest (scikit-learn): a global model over the panel (see ``_tabular``).

Trees are grown in batches with ``warm_start``; after each batch the forest is scored on the
validation window (MAPE in original units) and the score reported for pruning, so the
pruner's steps are batches of ``trees_per_step`` trees. A forest does not overfit with more
trees, so there is no early stopping: the refit grows all ``n_estimators`` trees.
``scikit-learn`` is imported only when a model is fit.
"""

from __future__ import annotations

from mlforecast_cli import ModelSpec, hookimpl

from ._params import TREE_PARAMS
from ._tabular import TREES_INSTALL, TreeForecaster


class RandomForestForecaster(TreeForecaster):
    """``RandomForestRegressor`` grown ``trees_per_step`` trees at a time."""

    objective_key = None  # scikit-learn's criterion; no Huber loss, so gap_loss is ignored

    early_stopping = False
    default_rounds = 200

    def tree_rows(self, rows: int) -> int | None:
        """Rows each tree is grown on: ``max_samples`` of them, at most ``max_tree_rows``
        (None: a bootstrap sample of all ``rows``)."""
        draw = rows * min(1.0, float(self.params.get("max_samples", 1.0)))
        cap = self.params.get("max_tree_rows")
        if cap is not None:
            draw = min(draw, int(cap))
        return None if draw >= rows else max(1, int(draw))

    def _forest(self, rows: int):
        from sklearn.ensemble import RandomForestRegressor

        p = self.params
        max_depth = p.get("max_depth")
        return RandomForestRegressor(
            n_estimators=0,
            criterion=str(p.get("criterion", "squared_error")),
            max_depth=None if max_depth in (None, 0) else int(max_depth),
            min_samples_leaf=int(p.get("min_samples_leaf", 1)),
            max_features=float(p.get("max_features", 1.0)),
            max_samples=self.tree_rows(rows),
            bootstrap=True,
            warm_start=True,
            random_state=self.seed,
            n_jobs=self.threads,
        )

    def _fit_one(self, X, y, valid, monitor, rounds, categorical):
        forest = self._forest(len(y))
        batch = max(1, int(self.params.get("trees_per_step", 10)))
        step = 0
        while forest.n_estimators < rounds:
            forest.n_estimators = min(rounds, forest.n_estimators + batch)
            forest.fit(X, y)
            step += 1
            if valid is not None and not monitor.round(step, valid.score(forest.predict(valid.X))):
                monitor.reraise()
        return forest, rounds

    def _predict_one(self, model, X):
        return model.predict(X)


@hookimpl
def register_models(register):
    register(
        ModelSpec(
            name="random_forest",
            summary="scikit-learn random forest: one global model, horizon step as a feature",
            family="tree",
            factory="mlforecast_cli.plugins.random_forest:RandomForestForecaster",
            space="mlforecast_cli.spaces:random_forest.yaml",
            requires=("sklearn",),
            install=TREES_INSTALL,
            extra_params=(*TREE_PARAMS, "criterion"),
        )
    )
