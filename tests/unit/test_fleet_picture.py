"""The fleet-status picture: valid SVG, a dot (or a bucket) per site, escaped names, bounded
size at 1000 sites, unknown values in their own band, the same bytes for the same figures."""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET

from flows import fleet_report
from model import fleet_picture as fp
from model.fleet_picture import SiteFigure

NS = "{http://www.w3.org/2000/svg}"


AGES = (20.0, 200.0, 900.0, 2000.0, 9000.0, 50_000.0, 300_000.0, 900_000.0)
DAYS = (-2.0, 3.0, 10.0, 20.0, 60.0, 200.0, 400.0)


def _fleet(n: int) -> list[SiteFigure]:
    """Sites spread over every cell, a few of each state, some unknowns."""
    out = []
    for i in range(n):
        age = None if i % 37 == 0 else AGES[i % len(AGES)] + i
        days = None if i % 41 == 0 else DAYS[(i // len(AGES)) % len(DAYS)]
        state = fp.FAILED if i % 53 == 0 else fp.UNHEALTHY if i % 11 == 0 else fp.OK
        out.append(SiteFigure(f"plant{i:04d}", state, age, days))
    return out


def _dots(svg: str) -> list[ET.Element]:
    return list(ET.fromstring(svg).iter(f"{NS}circle"))[3:]  # the first three: the legend


def test_a_small_fleet_is_valid_svg_with_one_dot_per_site_coloured_by_health() -> None:
    figs = [
        SiteFigure("plant01", fp.OK, 30.0, 200.0),
        SiteFigure("plant02", fp.UNHEALTHY, 7200.0, 10.0),
        SiteFigure("plant03", fp.FAILED, None, None),
    ]
    root = ET.fromstring(fp.fleet_svg(figs))
    assert root.tag == f"{NS}svg"
    dots = _dots(fp.fleet_svg(figs))
    assert sorted(d.get("class") or "" for d in dots) == ["f", "o", "u"]
    titles = sorted("".join(d.itertext()) for d in dots)
    assert titles == ["plant01: ok", "plant02: unhealthy", "plant03: failed"]
    text = " ".join(root.itertext())
    assert "3 site(s)" in text and "1 failed" in text and "1 unhealthy" in text
    assert "sync grace 15m" in text and "expiry warning 14d" in text


def test_every_site_of_a_dot_fleet_is_a_dot() -> None:
    figs = _fleet(150)
    dots = _dots(fp.fleet_svg(figs))
    per_cell: dict[tuple[int, int], int] = {}
    for f in figs:
        key = (fp.age_bucket(f.sync_age_seconds), fp.day_bucket(f.expiry_days))
        per_cell[key] = per_cell.get(key, 0) + 1
    assert max(per_cell.values()) <= fp.DOTS_PER_CELL  # so no cell became a bucket
    assert len(dots) == len(figs)


def test_a_site_name_is_escaped_for_xml() -> None:
    figs = [SiteFigure('<a&b>"x', fp.UNHEALTHY, 10.0, 3.0), SiteFigure("ok1", fp.OK, 5.0, 90.0)]
    svg = fp.fleet_svg(figs, title="fleet <&>")
    assert "<a&b>" not in svg and "&lt;a&amp;b&gt;" in svg
    root = ET.fromstring(svg)  # parses: nothing unescaped
    text = " ".join(root.itertext())
    assert '<a&b>"x: unhealthy' in text  # the tooltip, as a reader sees it
    assert 'soonest expiry: <a&b>"x (3.0d)' in text
    assert "fleet <&>: 2 site(s)" in text


def test_1000_sites_stay_small_as_buckets_that_count_every_site() -> None:
    figs = _fleet(1000)
    svg = fp.fleet_svg(figs)
    assert len(svg.encode()) < 150_000
    root = ET.fromstring(svg)
    assert _dots(svg) == []  # too many for a dot each: every cell is a bucket
    counted = sum(
        int(t.text or "0")
        for t in root.iter(f"{NS}text")
        if t.get("font-weight") == "bold" and t.get("font-size") == "13"
    )
    assert counted == 1000
    # The data URI the overview embeds stays bounded too.
    assert len(fp.data_uri(svg)) < 200_000


def test_a_crowded_cell_becomes_a_bucket_with_its_count_and_health_split() -> None:
    figs = [SiteFigure(f"s{i:02d}", fp.OK, 30.0, 200.0) for i in range(30)]
    figs += [SiteFigure("bad", fp.FAILED, 30.0, 200.0)]
    root = ET.fromstring(fp.fleet_svg(figs))
    counts = [t for t in root.iter(f"{NS}text") if t.get("font-size") == "13"]
    assert [(t.text, t.get("class")) for t in counts] == [("31", "f")]  # coloured by the worst
    bars = [
        "".join(r.itertext()) for r in root.iter(f"{NS}rect") if r.find(f"{NS}title") is not None
    ]
    assert bars == ["1 failed", "30 ok"]


def test_unknown_values_sit_in_their_own_band_and_column() -> None:
    assert fp.age_bucket(None) == fp.COLS and fp.day_bucket(None) == fp.ROWS
    assert fp.age_bucket(900) == 2 and fp.age_bucket(901) == 3  # 15 min exactly: within grace
    assert fp.day_bucket(-1) == 0 and fp.day_bucket(13.9) == 2 and fp.day_bucket(14) == 3
    figs = [
        SiteFigure("never-expires", fp.OK, 30.0, None),
        SiteFigure("never-synced", fp.UNHEALTHY, None, 100.0),
        SiteFigure("unreachable", fp.FAILED, None, None),
    ]
    dots = {"".join(d.itertext()).split(":")[0]: d for d in _dots(fp.fleet_svg(figs))}
    plot_bottom, right = fp.PLOT_BOTTOM, fp.LEFT + fp.COLS * fp.CELL_W
    assert float(dots["never-expires"].get("cy") or 0) > plot_bottom  # the band below
    assert float(dots["never-synced"].get("cx") or 0) > right  # the column on the right
    assert float(dots["unreachable"].get("cx") or 0) > right
    assert float(dots["unreachable"].get("cy") or 0) > plot_bottom
    assert "3 site(s) with an unknown value" in fp.fleet_svg(figs)


def test_the_same_figures_give_the_same_bytes_in_any_order() -> None:
    figs = _fleet(120)
    assert fp.fleet_svg(figs) == fp.fleet_svg(list(reversed(figs)))


def test_the_overview_embeds_the_picture_after_the_counts() -> None:
    rows = [
        {"site": "plant01", "ok": True, "state": "Completed", "run": "status-plant01",
         "url": "", "outcome": "", "sync_age_s": 40, "expiry_days": 80.5},
        {"site": "plant02", "ok": False, "state": "Failed", "run": "status-plant02",
         "url": "", "outcome": "canary", "sync_age_s": 4000, "expiry_days": None},
        {"site": "plant03", "ok": False, "state": "NotStarted", "run": "", "url": "",
         "outcome": "halted"},
    ]  # fmt: skip
    figs = fleet_report.figures(rows)
    assert [f.state for f in figs] == [fp.OK, fp.UNHEALTHY, fp.FAILED]
    assert figs[1].sync_age_seconds == 4000.0 and figs[1].expiry_days is None
    text = fleet_report.overview_markdown(
        "fleet-status", rows, None, fleet_report.picture("fleet-status", rows)
    )
    head, tail = text.split("](data:image/svg+xml;base64,", 1)
    assert head.index("| state | sites |") < head.index("![fleet-status:")
    svg = base64.b64decode(tail.split(")", 1)[0]).decode()
    assert len(_dots(svg)) == 3
    assert tail.index("| outcome | site |") > 0  # the rows come after the picture
