"""A projected view writes a row only when what a reader sees of it changed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from services.runtime.projection import StaleViewPosition, TableView

metadata = sa.MetaData()
things = sa.Table(
    "things",
    metadata,
    sa.Column("thing_id", sa.String(20), primary_key=True),
    sa.Column("live", sa.Boolean, nullable=False),
    sa.Column("version", sa.BigInteger, nullable=False),
)


@dataclass
class Thing:
    thing_id: str
    live: bool
    version: int


class ThingsView(TableView):
    name = "things"
    metadata = metadata
    versioned = ("things",)

    def rows(self, states: Any) -> dict[str, list[dict[str, Any]]]:
        return {
            "things": [
                {"thing_id": t.thing_id, "live": t.live, "version": t.version} for t in states
            ]
        }


@pytest.fixture
def view(tmp_path: Path) -> ThingsView:
    return ThingsView(sa.create_engine(f"sqlite:///{tmp_path / 'views.sqlite'}"))


def stored(view: ThingsView) -> list[tuple[str, bool, int]]:
    with view.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(things))]  # type: ignore[misc]


def test_a_row_that_changed_only_its_version_is_not_written_again(view: ThingsView) -> None:
    view.write(view.changed([Thing("a", True, 1)]), 0, 1)
    assert view.changed([Thing("a", True, 2)]) == {}  # a join: the meeting's row is the same
    changed = view.changed([Thing("a", False, 3), Thing("b", True, 1)])
    assert [r["thing_id"] for r in changed["things"]] == ["a", "b"]
    view.write(changed, 1, 3)
    assert sorted(stored(view)) == [("a", False, 3), ("b", True, 1)]


def test_reading_the_position_or_resetting_forgets_what_was_written(view: ThingsView) -> None:
    view.write(view.changed([Thing("a", True, 1)]), 0, 1)
    assert view.position() == 1  # another replica may have reset the view since
    assert view.changed([Thing("a", True, 2)]) != {}
    view.write(view.changed([Thing("a", True, 2)]), 1, 2)
    view.reset()
    assert stored(view) == []
    assert view.changed([Thing("a", True, 2)]) != {}  # the rebuild writes it again


def test_a_refused_write_is_not_remembered(view: ThingsView) -> None:
    view.write(view.changed([Thing("a", True, 1)]), 0, 1)
    with pytest.raises(StaleViewPosition):
        view.write(view.changed([Thing("a", False, 2)]), 5, 6)  # not at position 5
    assert view.changed([Thing("a", True, 2)]) != {}  # nothing is trusted after a refusal
