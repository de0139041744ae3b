"""The timeline plot of the HTML page, drawn from small hand-built documents: each panel's
series, scales, labels and marks, read back from the figure matplotlib drew."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import jsonschema
import pytest
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from chaos.report import load_schema
from chaos.report._plot import plot_scenario
from tests.chaos._small_report import arm, document, load, scenario

Draw = Callable[[dict[str, Any]], Figure]


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> Iterator[Draw]:
    """Draws a scenario as the page does and returns the figure (kept open to be read)."""
    from matplotlib import pyplot as plt

    close = plt.close
    figures: list[Figure] = []
    monkeypatch.setattr(plt, "close", figures.append)

    def draw(doc: dict[str, Any]) -> Figure:
        jsonschema.Draft202012Validator(load_schema()).validate(document([doc]))
        png = plot_scenario(doc)
        figure = figures[-1]
        assert png.startswith(b"\x89PNG")
        width, height = figure.get_size_inches() * 90  # drawn at 90 dpi
        assert (int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")) == (
            round(width),
            round(height),
        )
        return figure

    yield draw
    for figure in figures:
        close(figure)


def test_outcomes_past_the_extra_colours_take_them_again_in_turn(drawn: Draw) -> None:
    outcomes = {f"status_{n:02}": 1 for n in range(30)}  # a classify may name any outcome
    timeline = [{"t": 0.0, "requests": 30, "outcomes": outcomes, "p50_ms": 1.0, "p99_ms": 2.0}]
    doc = scenario("many", [arm("a", load=load(outcomes), timeline=timeline)], duration_s=0.5)
    figure = drawn(doc)
    bands = figure.axes[0].collections
    assert [band.get_label() for band in bands] == list(outcomes)
    extra = ["#1f77b4", "#ff7f0e", "#e377c2", "#aec7e8", "#ffbb78", "#98df8a"]
    assert [to_hex(band.get_facecolor()[0]) for band in bands] == [extra[n % 6] for n in range(30)]
