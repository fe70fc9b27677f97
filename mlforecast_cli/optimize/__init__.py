"""Running a study end to end: planning it, the study object, worker processes, the ensemble run."""
