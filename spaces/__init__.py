"""Search spaces (YAML) of the built-in models, read with importlib.resources."""
