"""How many cores a trial may use, and keeping native thread pools to that share.

With ``--n-jobs N`` on C cores every process runs one trial at a time on C // N threads.
Libraries that are not told a thread count (OpenBLAS under NumPy, OpenMP in LightGBM's
prediction, MKL) start one thread per core in every process; N processes then run N × C
spinning threads on C cores, and two LightGBM workers on two cores ran each trial 1.9× slower
instead of 1.1×.
"""

from __future__ import annotations

import os

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def threads_per_trial(n_jobs: int) -> int:
    """Cores one trial may use when ``n_jobs`` trials run at once."""
    return max(1, (os.cpu_count() or 1) // max(1, n_jobs))


def limit_native_threads(n_jobs: int) -> None:
    """Size native thread pools for ``n_jobs`` processes (before NumPy or a model library
    loads; child processes inherit it). A value the user set is kept."""
    if n_jobs <= 1:
        return
    for name in THREAD_VARIABLES:
        os.environ.setdefault(name, str(threads_per_trial(n_jobs)))
