"""Connections to what a study shares with other processes: study storage, the journal file, MLflow
stores, liveness of trials, outages, atomic files, thread counts.
"""
