"""The timeline plot of the HTML page, drawn from small hand-built documents: each panel's
series, scales, labels and marks, read back from the figure matplotlib drew."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import jsonschema
import pytest
from matplotlib.axes import Axes
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from chaos.report import load_schema
from chaos.report._plot import _LABEL_CHAR_WIDTH, _colors, _label_rows, _wrapped, plot_scenario
from chaos.scenario import Window
from tests.chaos._small_report import arm, document, load, scenario, timeline

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
        width, height = figure.get_size_inches() * 90  # drawn at 90 dpi (to a pixel)
        assert int.from_bytes(png[16:20], "big") == pytest.approx(width, abs=1)
        assert int.from_bytes(png[20:24], "big") == pytest.approx(height, abs=1)
        return figure

    yield draw
    for figure in figures:
        close(figure)


def _grid(figure: Figure, columns: int) -> list[list[Axes]]:
    """The figure's panels as rows of ``columns``."""
    axes = figure.axes
    return [axes[row : row + columns] for row in range(0, len(axes), columns)]


def _stack_tops(collection: Any, edges: int) -> list[tuple[float, float]]:
    """The top of one band of a stepped stackplot at each of its ``edges`` x values (matplotlib
    draws the band as one polygon: its start, the lower edge, its end, then the upper edge
    backwards, two vertices a step)."""
    vertices = collection.get_paths()[0].vertices
    upper = vertices[2 * edges + 1 : 4 * edges][::-1]
    return [(float(x), float(y)) for x, y in upper[0::2]]


def test_outcomes_past_the_extra_colours_take_them_again_in_turn(drawn: Draw) -> None:
    outcomes = {f"status_{n:02}": 1 for n in range(30)}  # a classify may name any outcome
    timeline = [{"t": 0.0, "requests": 30, "outcomes": outcomes, "p50_ms": 1.0, "p99_ms": 2.0}]
    doc = scenario("many", [arm("a", load=load(outcomes), timeline=timeline)], duration_s=0.5)
    figure = drawn(doc)
    bands = figure.axes[0].collections
    assert [band.get_label() for band in bands] == list(outcomes)
    extra = ["#1f77b4", "#ff7f0e", "#e377c2", "#aec7e8", "#ffbb78", "#98df8a"]
    assert [to_hex(band.get_facecolor()[0]) for band in bands] == [extra[n % 6] for n in range(30)]


def _gauge(t: list[float], values: list[float | None]) -> dict[str, Any]:
    known = [v for v in values if v is not None]
    return {"t": t, "values": values, "max": max(known), "min": min(known)}


def _two_arms() -> dict[str, Any]:
    """A naive arm with two gauges and a fault, a guarded arm with one of the gauges and an
    outcome of its own, and an arm that never ran (not plotted): 2 s in buckets of 0.5 s."""
    naive = arm(
        "naive", "naive", "reproduced",
        load=load({"ok": 5, "false_429": 5}),
        timeline=timeline({"ok": 3}, {"false_429": 4}, {"false_429": 1}, {"ok": 2}),
        gauges={
            "conns": _gauge([0.0, 1.0], [0.0, None]),
            "engines_in_service": _gauge([0.0, 0.5, 1.0], [8.0, 5.0, 7.0]),
        },
        faults_applied=[{"at": 0.5, "applied_at": 0.52, "kind": "AddToxic", "proxy": "redis",
                         "description": "add latency"}],
    )  # fmt: skip
    naive["timeline"][1].update(p50_ms=None, p99_ms=None)  # no request ended in that bucket
    naive["timeline"][2].update(p50_ms=3.0, p99_ms=6.0)
    naive["timeline"][3].update(p50_ms=4.0, p99_ms=8.0)
    guarded = arm(
        "guarded",
        load=load({"ok": 8, "mystery": 1}),
        timeline=timeline({"ok": 2}, {"ok": 2, "mystery": 1}, {"ok": 2}, {"ok": 2}),
        gauges={"engines_in_service": _gauge([0.0, 0.5, 1.0], [8.0, 8.0, 9.0])},
    )
    windows = [("before", 0.0, 0.5), ("fault", 0.5, 1.5), ("whole", 0.0, 2.0)]
    return scenario(
        "plot",
        [naive, guarded, arm("idle", "naive", "error")],
        windows=[{"name": name, "start": start, "end": end} for name, start, end in windows],
        gauge_bounds={"engines_in_service": [6.0, 2.0]},
    )


def _curves(ax: Axes) -> list[tuple[str, str, str, list[float], list[float]]]:
    """Each labelled line of ``ax``: label, colour, draw style, x and y (NaN as None)."""
    return [
        (
            str(line.get_label()),
            to_hex(line.get_color()),
            line.get_drawstyle(),
            [float(x) for x in line.get_xdata()],
            [None if math.isnan(y) else float(y) for y in line.get_ydata()],
        )
        for line in ax.get_lines()
        if not str(line.get_label()).startswith("_")
    ]


def _marks(ax: Axes) -> list[tuple[str, float, str, str, float]]:
    """Each unlabelled line of ``ax`` (a fault's, a bound's): vertical or horizontal, where,
    colour, style and width."""
    found = []
    for line in ax.get_lines():
        if str(line.get_label()).startswith("_"):
            xs, ys = list(line.get_xdata()), list(line.get_ydata())
            kind, at = ("v", xs[0]) if xs[0] == xs[1] else ("h", ys[0])
            found.append(
                (kind, float(at), to_hex(line.get_color()), line.get_linestyle(),
                 line.get_linewidth())
            )  # fmt: skip
    return found


def test_each_arm_is_a_column_of_rate_latency_and_gauge_panels(drawn: Draw) -> None:
    figure = drawn(_two_arms())
    grid = _grid(figure, 2)
    assert len(grid) == 4  # requests, latency, then one row per gauge (sorted by name)
    assert list(figure.get_size_inches()) == pytest.approx([13.0, 10.4])
    spec = grid[0][0].get_subplotspec()
    assert spec is not None
    assert list(spec.get_gridspec().get_height_ratios()) == [3.0, 2.0, 1.5, 1.5]
    assert figure.get_suptitle() == "plot: plot incident"
    assert figure._suptitle is not None
    assert figure._suptitle.get_fontsize() == 11
    every = [ax for row in grid for ax in row]
    for ax in every:
        assert ax.get_shared_x_axes().joined(ax, grid[0][0])
        assert ax.get_xlim() == (0.0, 2.0)
    for row in grid:
        assert row[1].get_shared_y_axes().joined(row[0], row[1])
    assert not grid[0][0].get_shared_y_axes().joined(grid[0][0], grid[1][0])
    assert [ax.get_xlabel() for ax in every] == [""] * 6 + ["seconds from load start"] * 2


def test_the_rate_panel_stacks_each_outcome_per_second_in_its_colour(drawn: Draw) -> None:
    rate_naive, rate_guarded = _grid(drawn(_two_arms()), 2)[0]
    assert rate_naive.get_title() == "naive (naive): reproduced"
    assert rate_guarded.get_title() == "guarded (guarded): mitigated"
    assert rate_naive.get_ylabel() == rate_guarded.get_ylabel() == "requests/s by outcome"
    for ax in (rate_naive, rate_guarded):
        bands = ax.collections
        assert [(band.get_label(), to_hex(band.get_facecolor()[0]), band.get_alpha())
                for band in bands] == [
            ("ok", "#2ca02c", 0.9), ("false_429", "#d62728", 0.9), ("mystery", "#1f77b4", 0.9),
        ]  # fmt: skip
    # requests in each 0.5 s bucket / 0.5 s, stacked; the last bucket held to the end (2 s)
    x = [0.0, 0.5, 1.0, 1.5, 2.0]
    assert [_stack_tops(band, 5) for band in rate_naive.collections] == [
        list(zip(x, [6.0, 0.0, 0.0, 4.0, 4.0], strict=True)),
        list(zip(x, [6.0, 8.0, 2.0, 4.0, 4.0], strict=True)),
        list(zip(x, [6.0, 8.0, 2.0, 4.0, 4.0], strict=True)),
    ]
    assert [_stack_tops(band, 5) for band in rate_guarded.collections] == [
        list(zip(x, [4.0] * 5, strict=True)),
        list(zip(x, [4.0] * 5, strict=True)),
        list(zip(x, [4.0, 6.0, 4.0, 4.0, 4.0], strict=True)),
    ]
    legend = rate_guarded.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["ok", "false_429", "mystery"]
    assert rate_naive.get_legend() is None


def test_the_latency_panel_steps_p99_and_p50_on_a_log_scale(drawn: Draw) -> None:
    latency_naive, latency_guarded = _grid(drawn(_two_arms()), 2)[1]
    x = [0.0, 0.5, 1.0, 1.5, 2.0]
    assert _curves(latency_naive) == [
        ("p99", "#d62728", "steps-post", x, [2.0, None, 6.0, 8.0, 8.0]),
        ("p50", "#1f77b4", "steps-post", x, [1.0, None, 3.0, 4.0, 4.0]),
    ]
    assert _curves(latency_guarded) == [
        ("p99", "#d62728", "steps-post", x, [2.0] * 5),
        ("p50", "#1f77b4", "steps-post", x, [1.0] * 5),
    ]
    for ax in (latency_naive, latency_guarded):
        assert ax.get_yscale() == "log"
        assert ax.get_ylabel() == "latency from schedule (ms)"
        major = ax.yaxis.get_major_formatter()
        assert [major(v, 0) for v in (0.5, 1.0, 100.0, 1000.0)] == ["0.5", "1", "100", "1000"]
        assert isinstance(ax.yaxis.get_minor_formatter(), NullFormatter)
    assert [t.get_text() for t in latency_guarded.get_legend().get_texts()] == ["p99", "p50"]
    assert latency_naive.get_legend() is None


def test_each_gauge_has_a_row_on_one_scale_for_both_arms_with_its_bounds_dashed(
    drawn: Draw,
) -> None:
    conns, engines = _grid(drawn(_two_arms()), 2)[2:]
    assert _curves(conns[0]) == [("conns", "#1f77b4", "steps-post", [0.0, 1.0], [0.0, None])]
    assert _curves(conns[1]) == []  # the guarded arm has no such gauge
    assert _curves(engines[0]) == [
        ("engines_in_service", "#ff7f0e", "steps-post", [0.0, 0.5, 1.0], [8.0, 5.0, 7.0])
    ]
    assert _curves(engines[1]) == [
        ("engines_in_service", "#ff7f0e", "steps-post", [0.0, 0.5, 1.0], [8.0, 8.0, 9.0])
    ]
    bounds = [("h", 6.0, "#d62728", "--", 1.0), ("h", 2.0, "#d62728", "--", 1.0)]
    assert [m for m in _marks(engines[1]) if m[0] == "h"] == bounds
    assert [m for m in _marks(engines[0]) if m[0] == "h"] == bounds
    assert [m for m in _marks(conns[0]) if m[0] == "h"] == []
    for ax in conns:
        assert ax.get_ylim() == (0.0, 1.0)  # a gauge that stayed at 0
        assert ax.get_ylabel() == "conns"
        assert ax.yaxis.label.get_fontsize() == 8
    for ax in engines:
        assert ax.get_ylim() == pytest.approx((0.0, 9.45))  # the highest sample of either arm
        assert ax.get_ylabel() == "engines_in\nservice"
    assert [t.get_text() for t in engines[1].get_legend().get_texts()] == ["engines_in_service"]
    # a gauge only the first arm has is named all the same, right of the row
    assert [t.get_text() for t in conns[1].get_legend().get_texts()] == ["conns"]
    assert conns[0].get_legend() is None
    assert engines[0].get_legend() is None


def test_a_row_names_each_line_once_whichever_arms_drew_it(drawn: Draw) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns of a legend with nothing to name
        figure = drawn(_two_arms())
    for row in _grid(figure, 2):
        labels = [t.get_text() for t in row[-1].get_legend().get_texts()]
        drawn_labels = {label for ax in row for label in ax.get_legend_handles_labels()[1]}
        assert sorted(labels) == sorted(drawn_labels)
        assert len(labels) == len(set(labels))


def test_every_panel_shades_the_windows_and_marks_the_arms_faults(drawn: Draw) -> None:
    grid = _grid(drawn(_two_arms()), 2)
    shades = [
        (0.0, 0.5, to_hex("C0"), 0.08),
        (0.5, 1.5, to_hex("C1"), 0.08),
        (0.0, 2.0, to_hex("C2"), 0.08),
    ]
    fault = ("v", 0.52, "#555555", ":", 1.0)
    for row in grid:
        for column, ax in enumerate(row):
            assert [
                (p.get_x(), p.get_x() + p.get_width(), to_hex(p.get_facecolor()), p.get_alpha())
                for p in ax.patches
            ] == shades
            assert [m for m in _marks(ax) if m[0] == "v"] == ([fault] if column == 0 else [])
            gridlines = ax.xaxis.get_gridlines() + ax.yaxis.get_gridlines()
            assert all(g.get_visible() and g.get_alpha() == 0.3 for g in gridlines)


def test_each_window_is_named_over_its_middle_on_a_row_clear_of_the_others(
    drawn: Draw,
) -> None:
    for rate in _grid(drawn(_two_arms()), 2)[0]:
        labels = [
            (t.get_text(), t.get_position(), t.get_ha(), t.get_va(), t.get_fontsize(),
             to_hex(t.get_color()), t.get_transform() is rate.get_xaxis_transform())
            for t in rate.texts
        ]  # fmt: skip
        assert labels == [
            ("before", (0.25, 1.0), "center", "top", 8, to_hex("C0"), True),
            ("fault", (1.0, 1.0), "center", "top", 8, to_hex("C1"), True),
            ("whole", (1.0, pytest.approx(0.93)), "center", "top", 8, to_hex("C2"), True),
        ]


def test_a_legend_sits_right_of_the_last_column(drawn: Draw) -> None:
    grid = _grid(drawn(_two_arms()), 2)
    for row in grid:
        ax = row[-1]
        legend = ax.get_legend()
        assert legend._loc == 2  # upper left (of its anchor)
        anchor = legend.get_bbox_to_anchor().transformed(ax.transAxes.inverted())
        assert (anchor.x0, anchor.y0) == pytest.approx((1.01, 1.0))
        assert {t.get_fontsize() for t in legend.get_texts()} == {8}


def test_a_gauge_name_is_cut_at_its_middle_underscore_when_long() -> None:
    assert _wrapped("abcdefghijklmnopq") == "abcdefghijklmnopq"  # no underscore
    assert _wrapped("abcdef_ghijklm") == "abcdef_ghijklm"  # 14 characters
    assert _wrapped("abcdef_ghijklmn") == "abcdef\nghijklmn"
    assert _wrapped("a_b_c_d_e_f_g_h") == "a_b_c_d\ne_f_g_h"
    assert _wrapped("aaaaaaa_b_aaaaaa") == "aaaaaaa\nb_aaaaaa"  # a tie: the first
    assert _wrapped("aaaaaaaaaaa_b_c") == "aaaaaaaaaaa\nb_c"


def test_window_labels_that_just_touch_share_a_row() -> None:
    half = len("ab") * _LABEL_CHAR_WIDTH * 100.0 / 2
    left, right = Window("ab", 0.0, 0.0), Window("ab", 2 * half, 2 * half)
    assert _label_rows([left, right], duration=100.0) == [0, 0]
    assert _label_rows([right, left], duration=100.0) == [0, 0]
    nudged = Window("ab", 2 * half - 1e-9, 2 * half - 1e-9)
    assert _label_rows([left, nudged], duration=100.0) == [0, 1]


def test_each_outcome_the_harness_names_has_a_colour_of_its_own() -> None:
    assert _colors(
        ["ok", "fallback", "limited", "false_429", "overloaded", "no_engine", "error", "timeout",
         "conn_error", "overflow", "classify_error", "mine", "yours"]
    ) == {
        "ok": "#2ca02c", "fallback": "#17becf", "limited": "#bcbd22", "false_429": "#d62728",
        "overloaded": "#ff7f0e", "no_engine": "#d62728", "error": "#8c1c13",
        "timeout": "#9467bd", "conn_error": "#8c564b", "overflow": "#000000",
        "classify_error": "#7f7f7f", "mine": "#1f77b4", "yours": "#ff7f0e",
    }  # fmt: skip


def test_windows_past_the_tenth_take_the_colours_again_from_the_first(drawn: Draw) -> None:
    windows = [{"name": f"w{n}", "start": n / 6, "end": (n + 1) / 6} for n in range(12)]
    only = arm("a", load=load({"ok": 4}), timeline=timeline({"ok": 2}, {"ok": 2}))
    (rate,), _ = _grid(drawn(scenario("many", [only], duration_s=1.0, windows=windows)), 1)
    colours = [to_hex(f"C{n}") for n in [*range(10), 0, 1]]
    assert [to_hex(p.get_facecolor()) for p in rate.patches] == colours
    assert [to_hex(t.get_color()) for t in rate.texts] == colours


def test_a_lone_arms_gauge_row_fits_its_samples_under_one(drawn: Draw) -> None:
    only = arm(
        "a",
        load=load({"ok": 4}),
        timeline=timeline({"ok": 2}, {"ok": 2}),
        gauges={"share": _gauge([0.0, 0.5], [0.2, 0.5])},
    )
    (_, _, (share,)) = _grid(drawn(scenario("one", [only], duration_s=1.0)), 1)
    assert share.get_ylim() == pytest.approx((0.0, 0.525))
