"""The plugin registry: entry points, fixtures, broken plugins, duplicates, MLF_LOAD_PLUGINS."""

from __future__ import annotations

import sys

import pytest

from mlforecast_cli import ModelSpec, PluginError, TaskInfo, UnknownModelError
from mlforecast_cli.models.registry import Registry
from tests.plugin_factories import SPACE, make_plugin, write_distribution

GOOD_PLUGIN = """
from mlforecast_cli import ModelSpec, hookimpl

@hookimpl
def register_models(register):
    register(ModelSpec(name="{model}", summary="test", family="other",
                       factory="tests.plugin_factories:MeanModel", space={space!r}))
"""


@pytest.fixture
def space_file(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(SPACE)
    return path


@pytest.fixture
def on_path(tmp_path, monkeypatch):
    """Put a site folder for temporary distributions on sys.path."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    yield site
    for name in [m for m in sys.modules if m.startswith("mlftest_")]:
        del sys.modules[name]


def test_builtin_seasonal_naive_comes_from_this_projects_entry_point():
    entry = Registry().get("seasonal_naive")
    assert entry.plugin.source == "entry point"
    assert entry.plugin.dist == "mlforecast-cli"
    assert entry.status == "ready"
    assert entry.load_space().n_params == 0


def test_plugin_registered_in_a_fixture(registry, space_file):
    registry.add_plugin(make_plugin("fixture_plugin", space_file), name="fixture_plugin")
    entry = registry.get("fixture_plugin")
    assert entry.plugin.source == "registered"
    assert entry.load_space().n_params == 2
    model = entry.create(
        {"shrink": 0.0, "window_size": 4}, TaskInfo(horizon=2, season_length=1, n_series=1)
    )
    assert model.params["shrink"] == 0.0


def test_real_entry_point_found_from_a_temporary_distribution(on_path, space_file):
    write_distribution(
        on_path,
        "mlftest-good",
        "mlftest_good",
        GOOD_PLUGIN.format(model="good_one", space=str(space_file)),
        "2.5",
    )
    registry = Registry()
    entry = registry.get("good_one")
    assert (entry.plugin.dist, entry.plugin.version) == ("mlftest-good", "2.5")
    assert "seasonal_naive" in registry.models


def test_plugins_load_lazily_and_once(on_path, space_file):
    write_distribution(
        on_path,
        "mlftest-once",
        "mlftest_once",
        "COUNT = [0]\n"
        + GOOD_PLUGIN.format(model="once", space=str(space_file))
        + "\nCOUNT[0] += 1\n",
    )
    registry = Registry()
    assert "mlftest_once" not in sys.modules
    assert registry.models == registry.models
    registry.get("once")
    assert sys.modules["mlftest_once"].COUNT == [1]


def test_broken_plugin_is_reported_and_others_still_work(on_path):
    write_distribution(
        on_path,
        "mlftest-broken",
        "mlftest_broken",
        "raise RuntimeError('boom at import\\nsecond line')\n",
    )
    registry = Registry()
    [problem] = [p for p in registry.problems if "mlftest_broken" in p]
    assert "mlftest-broken 1.0" in problem
    assert "RuntimeError: boom at import" in problem
    assert "second line" not in problem
    assert registry.get("seasonal_naive").ready


def test_duplicate_model_names_name_both_plugins(registry, space_file):
    registry.add_plugin(make_plugin("first_plugin", space_file, "twin"), name="first_plugin")
    registry.add_plugin(make_plugin("second_plugin", space_file, "twin"), name="second_plugin")
    with pytest.raises(PluginError, match="first_plugin.*second_plugin"):
        registry.get("twin")
    assert any(
        "'twin'" in p and "first_plugin" in p and "second_plugin" in p for p in registry.problems
    )
    assert registry.get("seasonal_naive").ready


def test_entry_point_named_like_a_builtin_one_says_which_holds_which(on_path, space_file):
    write_distribution(
        on_path,
        "mlftest-theta",
        "mlftest_theta",
        GOOD_PLUGIN.format(model="theta", space=str(space_file)),
        entry="theta",
    )
    registry = Registry()
    assert not [p for p in registry.plugins if p.error]  # both plugins load: no pluggy clash
    with pytest.raises(PluginError) as caught:
        registry.get("theta")
    message = str(caught.value)
    assert "theta (mlforecast-cli" in message
    assert "theta (mlftest-theta 1.0)" in message
    assert "pip uninstall mlftest-theta" in message
    assert "MLF_LOAD_PLUGINS=-mlftest-theta:theta" in message
    assert "MLF_LOAD_PLUGINS=-mlforecast-cli:theta" in message
    assert registry.get("ets").plugin.dist == "mlforecast-cli"
    mine = Registry(only=["-mlforecast-cli:theta"]).get("theta")
    assert mine.plugin.dist == "mlftest-theta"
    assert "ets" in Registry(only=["-mlforecast-cli:theta"]).models
    assert Registry(only=["mlftest_theta:theta"]).get("theta").plugin.dist == "mlftest-theta"
    everything_but = Registry(only=["-theta"]).models
    assert "ets" in everything_but and "theta" not in everything_but


def test_misspelt_hook_fails_loudly_for_that_plugin_only(registry):
    from mlforecast_cli import hookimpl

    class Misspelt:
        @hookimpl
        def register_model(self, register):  # the spec is register_models
            pass

    registry.add_plugin(Misspelt(), name="misspelt")
    assert any("misspelt" in p and "register_model" in p for p in registry.problems)
    assert registry.get("seasonal_naive").ready


def test_invalid_spec_is_reported(registry, space_file):
    from mlforecast_cli import hookimpl

    class BadSpec:
        @hookimpl
        def register_models(self, register):
            register(ModelSpec(name="bad name!", summary="", factory="x:y", space=space_file))

    registry.add_plugin(BadSpec(), name="badspec")
    assert any("badspec" in p and "name" in p for p in registry.problems)


def test_load_plugins_env_restricts(monkeypatch):
    assert Registry(only=[]).models == {}
    assert set(Registry(only=["seasonal_naive"]).models) == {"seasonal_naive"}
    monkeypatch.setenv("MLF_LOAD_PLUGINS", "")
    from mlforecast_cli.models.registry import get_models, set_registry

    set_registry(None)
    assert get_models() == {}


def test_unknown_model_suggests_close_names():
    with pytest.raises(UnknownModelError, match="did you mean seasonal_naive"):
        Registry().get("seasonal_naiv")


def test_missing_requirement_gives_the_install_command(registry, space_file):
    from mlforecast_cli import hookimpl

    class NeedsLib:
        @hookimpl
        def register_models(self, register):
            register(
                ModelSpec(
                    name="needy",
                    summary="",
                    factory="x:y",
                    space=space_file,
                    requires=("surely_not_installed_lib",),
                    install="pip install needy-extra",
                )
            )

    registry.add_plugin(NeedsLib(), name="needs")
    entry = registry.get("needy")
    assert entry.status == "missing surely_not_installed_lib: pip install needy-extra"
    assert not entry.ready


def test_plugins_dir_loads_single_file_plugins(tmp_path, space_file):
    folder = tmp_path / "local"
    folder.mkdir()
    (folder / "mine.py").write_text(GOOD_PLUGIN.format(model="mine", space=str(space_file)))
    (folder / "broken.py").write_text("import not_a_module_anywhere\n")
    registry = Registry(plugins_dir=folder)
    assert registry.get("mine").plugin.source == "file"
    assert any("broken" in p and "not_a_module_anywhere" in p for p in registry.problems)
