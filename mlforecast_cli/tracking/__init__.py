"""MLflow: a study's parent run, its child runs, reading an experiment's study runs, the
leaderboard.
"""
