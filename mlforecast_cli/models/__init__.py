"""The model contract, the plugin hooks, the registry of installed models, the seasonal naive
baseline.
"""
