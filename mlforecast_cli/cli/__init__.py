"""The `mlf` command line: a Typer app with one module per command."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import typer.main

from ..errors import DEBUG_ENV, MlfError, debug_enabled, described
from .datasets import datasets
from .ensemble import ensemble
from .invocation import record
from .leaderboard import leaderboard
from .models import list_models, show_space
from .optimize import optimize
from .output import error_line
from .plugins import plugins
from .predict import predict
from .report import report

app = typer.Typer(
    name="mlf",
    help="Find the best forecasting model and hyperparameters for a sales panel.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from .. import __version__

        typer.echo(f"mlf {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks (or set MLF_DEBUG=1).")
    ] = False,
    plugins_dir: Annotated[
        Path | None,
        typer.Option(
            "--plugins-dir",
            metavar="DIR",
            envvar="MLF_PLUGINS_DIR",
            help="Also load single-file model plugins (*.py) from this folder.",
        ),
    ] = None,
) -> None:
    if plugins_dir is not None:
        from ..models.registry import Registry, set_registry

        only = os.environ.get("MLF_LOAD_PLUGINS")
        set_registry(
            Registry(only=None if only is None else only.split(","), plugins_dir=plugins_dir)
        )


app.command("list-models")(list_models)
app.command("show-space")(show_space)
app.command("datasets")(datasets)
app.command("plugins")(plugins)
app.command("optimize")(optimize)
app.command("ensemble")(ensemble)
app.command("leaderboard")(leaderboard)
app.command("predict")(predict)
app.command("report")(report)


def bare_switches(command: Any) -> None:
    """Show every flag of ``command`` and its subcommands as a bare switch in help: Typer
    writes ``--json <bool>``, as if the flag took a value."""
    ctx = typer.Context(command, info_name=command.name)
    for param in [*command.params, command.get_help_option(ctx)]:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    for sub in getattr(command, "commands", {}).values():
        bare_switches(sub)


GLOBAL_OPTIONS = {
    "--plugins-dir": "--plugins-dir DIR",
    "--debug": "--debug",
    "--version": "--version",
}
"""The options of ``mlf`` itself, which go before the command, as they are written."""


def misplaced_global_option(exc: Exception) -> str | None:
    """The message for a global option given after the command (``mlf optimize --debug``),
    which click calls an unknown option of that command; None for any other error."""
    name = (getattr(exc, "option_name", None) or "").partition("=")[0]
    ctx = getattr(exc, "ctx", None)
    if name not in GLOBAL_OPTIONS or ctx is None or ctx.parent is None:
        return None
    example = (
        "mlf --version"
        if name == "--version"
        else f"mlf {GLOBAL_OPTIONS[name]} {ctx.info_name} ..."
    )
    return (
        f"{name} is an option of mlf itself, not of '{ctx.command_path}': put it before the "
        f"command, as in '{example}'"
    )


def _click_exception_type() -> type[Exception]:
    # Typer may vendor its own click; find its ClickException through a public subclass.
    return next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the app, turning errors into one line and an exit code."""
    args = sys.argv[1:] if argv is None else list(argv)
    record(args)
    saved_debug = os.environ.get(DEBUG_ENV)
    if "--debug" in args:  # for this command and the processes it starts (workers, writer)
        os.environ[DEBUG_ENV] = "1"
    debug = debug_enabled()
    click_exception = _click_exception_type()
    try:
        command = typer.main.get_command(app)
        bare_switches(command)
        code = command(args=args, prog_name="mlf", standalone_mode=False)
    except click_exception as exc:
        misplaced = misplaced_global_option(exc)
        if debug and misplaced is None:
            raise
        hint = ""
        ctx = getattr(exc, "ctx", None)
        if ctx is not None:
            hint = f" (see '{ctx.command_path} --help')"
        error_line(misplaced or exc.format_message() + hint)
        code = exc.exit_code
    except MlfError as exc:
        if debug:
            raise
        error_line(str(exc))
        code = exc.exit_code
    except (KeyboardInterrupt, typer.Abort):
        error_line("interrupted")
        code = 130
    except Exception as exc:
        if debug:
            raise
        error_line(
            f"unexpected {described(exc)} (rerun with --debug for the traceback and report it)"
        )
        code = 1
    finally:
        if saved_debug is None:
            os.environ.pop(DEBUG_ENV, None)
        else:
            os.environ[DEBUG_ENV] = saved_debug
    sys.exit(code if isinstance(code, int) else 0)
