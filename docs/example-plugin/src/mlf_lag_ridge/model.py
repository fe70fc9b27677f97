"""LagRidge: a ridge regression that corrects the seasonal naive forecast."""

import numpy as np

from mlforecast_cli import Forecaster


class LagRidge(Forecaster):
    """Direct multi-step ridge regression; horizon step ``j`` has its own coefficients.

    The forecast of step ``j`` is the seasonal naive value (the last value where the history
    is shorter than a season) plus a correction learnt from the last ``window_size`` values,
    the calendar terms and the known features of that step. A large ``alpha`` shrinks the
    correction to zero, that is to the seasonal naive forecast.
    """

    supports_pruning = True  # fit() calls report(): the contract suite checks that it does

    def fit(self, train, valid=None, report=None):
        alpha = float(self.params["alpha"])
        self.coef_, self.mean_, self.std_ = [], [], []
        for step in range(train.horizon):
            design = self._design(train, step)
            mean, std = design.mean(axis=0), design.std(axis=0)
            std[std == 0] = 1.0
            z = np.column_stack(((design - mean) / std, np.ones(len(design))))
            penalty = alpha * len(z) * np.eye(z.shape[1])
            penalty[-1, -1] = 0.0  # never shrink the intercept
            target = train.y[:, step] - self._base(train, step)
            self.coef_.append(np.linalg.solve(z.T @ z + penalty, z.T @ target))
            self.mean_.append(mean)
            self.std_.append(std)
            if report is not None and valid is not None and valid.y is not None:
                # Validation error of the steps fitted so far, in the data's own units (so
                # that trials with different scalers compare). The pruner may stop us here.
                done = self._predict(valid, step + 1)
                error = np.abs(done - valid.y[:, : step + 1]) * valid.scale[:, None]
                report(step, float(error.mean()))
        return self

    def predict(self, windows):
        return self._predict(windows, len(self.coef_))

    def _predict(self, windows, steps):
        out = np.empty((len(windows), steps))
        for step in range(steps):
            z = (self._design(windows, step) - self.mean_[step]) / self.std_[step]
            correction = z @ self.coef_[step][:-1] + self.coef_[step][-1]
            out[:, step] = self._base(windows, step) + correction
        return out

    def _base(self, windows, step):
        """The seasonal naive forecast of ``step``; the last value where it is unknown."""
        seasonal = windows.seasonal[:, step]
        return np.where(np.isfinite(seasonal), seasonal, windows.x[:, -1])

    def _design(self, windows, step):
        known = np.isfinite(windows.seasonal[:, step])
        columns = [
            windows.x,
            self._base(windows, step)[:, None],
            known[:, None].astype(float),
            windows.features[:, step, :],
        ]
        if self.params.get("calendar", True):
            columns.append(windows.calendar[:, step, :])
        return np.column_stack(columns)
