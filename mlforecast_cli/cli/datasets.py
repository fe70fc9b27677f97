"""`mlf datasets`: the built-in datasets."""

from __future__ import annotations

from .options import JsonTableOpt
from .output import print_json, print_table


def datasets(
    json_output: JsonTableOpt = False,
) -> None:
    """List the built-in datasets with their source and defaults."""
    from dataclasses import asdict

    from ..datasets import list_datasets

    rows = [asdict(card) for card in list_datasets()]
    if json_output:
        print_json({"datasets": rows})
        return
    for row in rows:
        row["ids"] = ", ".join(row["ids"])
        row["features"] = ", ".join(row["features"])
    print_table(
        rows,
        ["name", "target", "time", "ids", "features", "horizon", "freq", "title"],
        shrink=("title",),
    )
