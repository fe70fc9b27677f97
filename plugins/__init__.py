"""Built-in model plugins. They use only the public API, as a third-party plugin would."""
