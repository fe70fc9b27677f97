"""Parameters the built-in models read beyond what their shipped spaces name: each model
declares them in its ``ModelSpec(extra_params=...)``, so that ``--set`` and a ``--space`` file
may set them while a misspelt name is refused. Imports nothing."""

from __future__ import annotations

TREE_PARAMS = (
    "strategy",
    "target",
    "transform",
    "series_id",
    "stop_on",
    "units",
    "level",
    "gap_loss",
    "gap_clip",
    "early_stopping_rounds",
    "huber_delta",
)
"""What ``_tabular.TreeForecaster`` reads for every tree model."""

TRAINING_LOOP_PARAMS = (
    "learning_rate",
    "epochs",
    "batch_size",
    "dropout",
    "patience",
    "min_delta",
    "grad_clip",
    "max_seconds",
    "weight_decay",
    "loss",
    "residual",
    "base",
    "steps_per_epoch",
    "lr_decays",
    "decay_span",
    "valid_error",
)
"""The shared training loop's settings, read for every neural model."""

TRAINING_PARAMS = (*TRAINING_LOOP_PARAMS, "embedding_dim", "head_size")
"""The loop's settings and the per-step head's of lstm, tcn and transformer (together the keys
of ``_torch_training.DEFAULTS``)."""

STATS_PARAMS = ("season_length",)
"""What ``_stats.StatsForecaster`` reads for every statistical model."""
