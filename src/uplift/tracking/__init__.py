"""MLflow at the edge: runs, plots, the pyfunc model and the registry alias."""
