"""The saved model, its MLflow pyfunc wrapper, forecasting past the data."""
