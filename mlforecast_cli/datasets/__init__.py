"""Built-in datasets: a data file shipped in this package with a YAML card each.

A card (``<name>.yaml`` here) says where the data comes from, its licence, and the column
mapping, horizon and frequency to use by default. Listing datasets reads only the cards;
pandas is imported only by :func:`load_dataset`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from ..errors import UsageError

if TYPE_CHECKING:
    from ..data import Columns, Panel

__all__ = [
    "DatasetCard",
    "UnknownDatasetError",
    "dataset_path",
    "get_dataset",
    "list_datasets",
    "load_dataset",
]


class UnknownDatasetError(UsageError):
    """No built-in dataset has that name."""


@dataclass(frozen=True)
class DatasetCard:
    """What a built-in dataset is, where it comes from, and how to read it."""

    name: str
    title: str
    file: str
    source: str
    licence: str
    description: str
    target: str
    time: str
    ids: tuple[str, ...]
    features: tuple[str, ...]
    weight: str | None
    horizon: int
    freq: str

    @property
    def columns(self) -> Columns:
        """The column mapping of this dataset, as :func:`mlforecast_cli.data.load_panel` takes "
        "it."""
        from ..data import Columns

        return Columns(
            target=self.target,
            time=self.time,
            ids=self.ids,
            features=self.features,
            weight=self.weight,
        )


def _card(resource: str, raw: Any) -> DatasetCard:
    names = {f.name for f in fields(DatasetCard)}
    if not isinstance(raw, dict) or names - raw.keys():
        missing = sorted(names - raw.keys()) if isinstance(raw, dict) else sorted(names)
        raise ValueError(f"dataset card {resource} lacks the keys {missing}")
    values = {k: raw[k] for k in names}
    values["ids"] = tuple(raw["ids"] or ())
    values["features"] = tuple(raw["features"] or ())
    values["horizon"] = int(raw["horizon"])
    values = {k: " ".join(v.split()) if isinstance(v, str) else v for k, v in values.items()}
    return DatasetCard(**values)


@cache
def _cards() -> dict[str, DatasetCard]:
    root = resources.files(__name__)
    cards = {}
    for entry in root.iterdir():
        if entry.name.endswith(".yaml"):
            card = _card(entry.name, yaml.safe_load(entry.read_text(encoding="utf-8")))
            cards[card.name] = card
    return dict(sorted(cards.items()))


def list_datasets() -> list[DatasetCard]:
    """Every built-in dataset's card, sorted by name."""
    return list(_cards().values())


def get_dataset(name: str) -> DatasetCard:
    """The card of dataset ``name``; :class:`UnknownDatasetError` lists the known names."""
    cards = _cards()
    if name not in cards:
        known = ", ".join(cards) or "none"
        raise UnknownDatasetError(
            f"unknown dataset {name!r}; built-in datasets: {known} (see mlf datasets)"
        )
    return cards[name]


@contextmanager
def dataset_path(name: str) -> Iterator[Path]:
    """Context manager giving a real file path to the data file of dataset ``name``."""
    card = get_dataset(name)
    with resources.as_file(resources.files(__name__).joinpath(card.file)) as path:
        yield path


def load_dataset(name: str) -> Panel:
    """Load dataset ``name`` as a validated :class:`~mlforecast_cli.data.Panel`."""
    from ..data import load_panel

    card = get_dataset(name)
    with dataset_path(name) as path:
        return load_panel(
            path, card.columns, freq=card.freq, source=f"dataset {name} ({card.file})"
        )
