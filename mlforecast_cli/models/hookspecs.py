"""The hook specifications every mlf plugin may implement.

Hooks may gain keyword arguments over time, never lose or rename them; an
implementation takes only the arguments it names (pluggy's opt-in arguments).
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

from .contract import ModelSpec

hookspec = pluggy.HookspecMarker("mlf")
hookimpl = pluggy.HookimplMarker("mlf")


@hookspec
def register_models(register: Callable[[ModelSpec], None]) -> None:
    """Register the plugin's models: call ``register(ModelSpec(...))`` once per model.

    Keep it cheap: build specs only, import no model library here.
    """
