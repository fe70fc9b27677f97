"""Built-in datasets: a data file shipped in this package with a YAML card each.

A card (``<name>.yaml`` here) says where the data comes from, its licence, the column
mapping, horizon and frequency to use by default, and optionally the known future values of
its features (``future``: Walmart's holiday weeks), which :func:`dataset_table` appends as rows
with an empty target so that `mlf predict` needs no flag. Listing datasets reads only the
cards; pandas is imported only by the functions that read the data.
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
    import pandas as pd

    from ..data.panel import Columns, Panel

__all__ = [
    "DatasetCard",
    "KnownFuture",
    "UnknownDatasetError",
    "dataset_path",
    "dataset_table",
    "get_dataset",
    "list_datasets",
    "load_dataset",
]


class UnknownDatasetError(UsageError):
    """No built-in dataset has that name."""


@dataclass(frozen=True)
class KnownFuture:
    """Feature values known in advance, the same for every series, up to ``until``.

    A step takes ``default``, updated by ``dates[day]`` when its day (ISO ``YYYY-MM-DD``) is
    listed; ``dates`` may also list days inside the data (they document the source).
    """

    until: str
    default: dict[str, Any]
    dates: dict[str, dict[str, Any]]

    def values(self, day: str) -> dict[str, Any]:
        """The feature values of the step on ``day`` (ISO date)."""
        return {**self.default, **self.dates.get(day, {})}


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
    future: KnownFuture | None = None

    @property
    def columns(self) -> Columns:
        """The column mapping of this dataset, as :func:`mlforecast_cli.data.load_panel` takes "
        "it."""
        from ..data.panel import Columns

        return Columns(
            target=self.target,
            time=self.time,
            ids=self.ids,
            features=self.features,
            weight=self.weight,
        )


OPTIONAL_KEYS = ("future",)


def _card(resource: str, raw: Any) -> DatasetCard:
    names = {f.name for f in fields(DatasetCard)} - set(OPTIONAL_KEYS)
    if not isinstance(raw, dict) or names - raw.keys():
        missing = sorted(names - raw.keys()) if isinstance(raw, dict) else sorted(names)
        raise ValueError(f"dataset card {resource} lacks the keys {missing}")
    values = {k: raw[k] for k in names}
    values["ids"] = tuple(raw["ids"] or ())
    values["features"] = tuple(raw["features"] or ())
    values["horizon"] = int(raw["horizon"])
    values = {k: " ".join(v.split()) if isinstance(v, str) else v for k, v in values.items()}
    if raw.get("future") is not None:
        values["future"] = _known_future(resource, raw["future"], values["features"])
    return DatasetCard(**values)


def _known_future(resource: str, raw: Any, features: tuple[str, ...]) -> KnownFuture:
    future = KnownFuture(
        until=str(raw["until"]),
        default=dict(raw.get("default") or {}),
        dates={str(day): dict(v) for day, v in (raw.get("dates") or {}).items()},
    )
    named = set(future.default).union(*future.dates.values())
    if set(future.default) != set(features) or named - set(features):
        raise ValueError(
            f"dataset card {resource}: future.default must give every feature {list(features)}, "
            f"and future.dates only those (it names {sorted(named)})"
        )
    return future


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
    from ..data.panel import load_panel

    card = get_dataset(name)
    with dataset_path(name) as path:
        return load_panel(
            path, card.columns, freq=card.freq, source=f"dataset {name} ({card.file})"
        )


def dataset_table(name: str) -> pd.DataFrame:
    """The table of dataset ``name`` as shipped, followed by its known future: for every
    series, one row per step after its last date up to the card's ``future.until``, with the
    target empty and the known features filled (nothing is added when the card has none)."""
    from ..data.tables import read_table

    card = get_dataset(name)
    with dataset_path(name) as path:
        frame = read_table(path)
    if card.future is None:
        return frame
    return _with_known_future(card, frame, card.future)


def _with_known_future(card: DatasetCard, frame: pd.DataFrame, future: KnownFuture):
    import pandas as pd

    times = pd.to_datetime(frame[card.time])
    ids = list(card.ids)
    ends = times.groupby([frame[c] for c in ids]).max() if ids else pd.Series({(): times.max()})
    as_text = not pd.api.types.is_datetime64_any_dtype(frame[card.time])
    rows = []
    for key, end in ends.items():
        key = key if isinstance(key, tuple) else (key,)
        for step in pd.date_range(end, pd.Timestamp(future.until), freq=card.freq)[1:]:
            day = step.strftime("%Y-%m-%d")
            row = dict(zip(ids, key, strict=True))
            row[card.time] = day if as_text else step
            rows.append({**row, **future.values(day)})
    if not rows:
        return frame
    return pd.concat([frame, pd.DataFrame(rows)], ignore_index=True)
