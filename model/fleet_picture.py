"""The fleet-status picture: every site's last-sync age against its soonest password expiry.

One SVG a person looks at instead of reading 200+ rows: x is the age of the last sync in
buckets (log-ish: minutes to weeks), y the days until the soonest password the site uses
expires (client or sync), one dot per site coloured by health. The region past either threshold
(sync grace, expiry warning) is shaded, so "everything green in the white area" is the healthy
fleet at a glance. Sites whose age or expiry is unknown (never synced, never expires, site not
readable) sit in a separate band and column, never on the axes.

A cell with more sites than dots fit, or a fleet too large for a dot each, shows the cell as a
bucket instead: its count and a bar split by health. So the size stays bounded (well under
150 KB at 1000 sites) and the picture stays readable. Pure: the same figures give the same
bytes; every text (site names included) is XML-escaped.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape

OK, UNHEALTHY, FAILED = "ok", "unhealthy", "failed"
STATES = (FAILED, UNHEALTHY, OK)  # worst first: drawn first, listed first
COLOURS = {FAILED: "#c62828", UNHEALTHY: "#ef8f00", OK: "#2e7d32"}

# Upper bounds of the age buckets, seconds: <=1m, <=5m, <=15m, <=1h, <=6h, <=1d, <=7d, more.
AGE_EDGES = (60, 300, 900, 3600, 6 * 3600, 86400, 7 * 86400)
AGE_LABELS = ("≤1m", "≤5m", "≤15m", "≤1h", "≤6h", "≤1d", "≤7d", ">7d")
# Lower bounds of the expiry buckets, days (bottom row: already expired).
DAY_EDGES = (0, 7, 14, 30, 90, 365)
DAY_LABELS = ("expired", "<7d", "<14d", "<30d", "<90d", "<365d", "≥365d")

DOTS_PER_ROW, DOT_ROWS = 8, 3
DOTS_PER_CELL = DOTS_PER_ROW * DOT_ROWS
# Above this many sites every cell is a bucket: a dot each would outgrow the size bound.
MAX_DOT_SITES = 400
NAME_LIMIT = 40  # characters of a site name kept in a dot's tooltip

# Geometry (px).
LEFT, TOP, CELL_W, CELL_H, GAP = 64, 58, 76, 34, 10
COLS, ROWS = len(AGE_LABELS), len(DAY_LABELS)
PLOT_RIGHT = LEFT + (COLS + 1) * CELL_W + GAP  # the unknown column's right edge
WIDTH = PLOT_RIGHT + 78  # room for the thresholds' labels
PLOT_BOTTOM = TOP + ROWS * CELL_H
HEIGHT = PLOT_BOTTOM + GAP + CELL_H + 76


@dataclass(frozen=True)
class SiteFigure:
    """What the picture knows of one site: its health and the two numbers (None: unknown)."""

    site: str
    state: str  # ok | unhealthy | failed
    sync_age_seconds: float | None
    expiry_days: float | None


def age_bucket(seconds: float | None) -> int:
    """Column of a sync age: 0..COLS-1, or COLS for unknown. An age on an edge belongs to
    the bucket it bounds (15 min exactly is still within a 15 min grace)."""
    if seconds is None:
        return COLS
    return bisect.bisect_left(AGE_EDGES, max(0.0, seconds))


def day_bucket(days: float | None) -> int:
    """Row of a days-to-expiry, 0 (expired) .. ROWS-1, or ROWS for unknown."""
    if days is None:
        return ROWS
    return bisect.bisect_right(DAY_EDGES, days)


def _x_of_seconds(seconds: float) -> float:
    """Where an age falls on the x axis, linear within its bucket (for threshold lines)."""
    col = min(age_bucket(seconds), COLS - 1)
    low = 0.0 if col == 0 else float(AGE_EDGES[col - 1])
    high = float(AGE_EDGES[col]) if col < len(AGE_EDGES) else low
    frac = 1.0 if high <= low else min(1.0, (seconds - low) / (high - low))
    return LEFT + (col + frac) * CELL_W


def _y_of_days(days: float) -> float:
    row = min(day_bucket(days), ROWS - 1)
    low = float(DAY_EDGES[row - 1]) if row > 0 else float(DAY_EDGES[0])
    high = float(DAY_EDGES[row]) if row < len(DAY_EDGES) else low
    frac = 0.0 if high <= low else max(0.0, min(1.0, (days - low) / (high - low)))
    # Row 0 (expired) is drawn at the bottom; a row's lower bound is its bottom edge.
    return PLOT_BOTTOM - (row + frac) * CELL_H if row > 0 else PLOT_BOTTOM - CELL_H


def _cell_origin(col: int, row: int) -> tuple[float, float]:
    x = LEFT + col * CELL_W + (GAP if col == COLS else 0)
    y = PLOT_BOTTOM + GAP if row == ROWS else PLOT_BOTTOM - (row + 1) * CELL_H
    return x, y


def _n(v: float) -> str:
    """A coordinate, short and the same on every platform."""
    return f"{v:.1f}".removesuffix(".0")


def _attr(text: str) -> str:
    return escape(text, {'"': "&quot;"})


def _fmt_age(seconds: float) -> str:
    s = int(seconds)
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600}h"


def _state(fig: SiteFigure) -> str:
    return fig.state if fig.state in COLOURS else FAILED


def _order(figs: Iterable[SiteFigure]) -> list[SiteFigure]:
    return sorted(figs, key=lambda f: (STATES.index(_state(f)), f.site))


def fleet_svg(
    figures: Sequence[SiteFigure],
    *,
    title: str = "fleet-status",
    sync_grace_seconds: float = 900,
    expiry_warning_days: float = 14,
    rotation_lead_days: float | None = 30,
) -> str:
    """The picture as an SVG document (UTF-8 text, no XML declaration needed)."""
    cells: dict[tuple[int, int], list[SiteFigure]] = {}
    for fig in figures:
        key = (age_bucket(fig.sync_age_seconds), day_bucket(fig.expiry_days))
        cells.setdefault(key, []).append(fig)
    dots = len(figures) <= MAX_DOT_SITES
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="11">',
        "<style>"
        + "".join(f".{s[0]}{{fill:{c}}}" for s, c in COLOURS.items())
        + ".g{fill:#eef6ee}.n{fill:#eceef1}.w{fill:#fdecea}.t{fill:#333}.m{fill:#666}"
        ".l{stroke:#555;stroke-dasharray:4 3;stroke-width:1.2;fill:none}"
        ".b{stroke:#d0d3d8;fill:none}</style>",
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#fff"/>',
    ]
    out += _header(title, figures, dots)
    out += _grid(sync_grace_seconds, expiry_warning_days)
    for (col, row), members in sorted(cells.items()):
        if dots and len(members) <= DOTS_PER_CELL:
            out += _dots(col, row, members)
        else:
            out += _bucket(col, row, members)
    out += _thresholds(sync_grace_seconds, expiry_warning_days, rotation_lead_days)
    out.append(_legend(sync_grace_seconds, expiry_warning_days, rotation_lead_days))
    out += _footer(figures)
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _header(title: str, figures: Sequence[SiteFigure], dots: bool) -> list[str]:
    tally = {s: 0 for s in STATES}
    for f in figures:
        tally[_state(f)] += 1
    parts = [
        f'<text x="{LEFT}" y="20" font-size="15" font-weight="bold" class="t">'
        f"{escape(title)}: {len(figures)} site(s)</text>"
    ]
    x = LEFT
    for state in STATES:
        label = f"{tally[state]} {state}"
        parts.append(f'<circle cx="{x + 5}" cy="37" r="5" class="{state[0]}"/>')
        parts.append(f'<text x="{x + 14}" y="41" class="t">{label}</text>')
        x += 24 + 7 * len(label)
    parts.append(
        f'<text x="{WIDTH - 16}" y="41" text-anchor="end" class="m">'
        + ("one dot per site; a number: sites in a full cell" if dots else "sites per cell")
        + "</text>"
    )
    return parts


def _grid(grace: float, warning: float) -> list[str]:
    parts: list[str] = []
    for col in range(COLS + 1):
        for row in range(ROWS + 1):
            x, y = _cell_origin(col, row)
            late = col < COLS and (AGE_EDGES[col - 1] if col else 0) >= grace
            soon = row < ROWS and (DAY_EDGES[row] if row < len(DAY_EDGES) else 1e9) <= warning
            cls = "w" if late or soon else ("n" if row == ROWS or col == COLS else "g")
            parts.append(
                f'<rect x="{_n(x + 1)}" y="{_n(y + 1)}" width="{CELL_W - 2}" '
                f'height="{CELL_H - 2}" rx="3" class="{cls}"/>'
            )
    for row, label in enumerate((*DAY_LABELS, "unknown")):
        _, y = _cell_origin(0, row)
        parts.append(
            f'<text x="{LEFT - 6}" y="{_n(y + CELL_H / 2 + 4)}" text-anchor="end" class="t">'
            f"{escape(label)}</text>"
        )
    axis_y = PLOT_BOTTOM + GAP + CELL_H + 16
    for col, label in enumerate((*AGE_LABELS, "unknown")):
        x, _ = _cell_origin(col, 0)
        parts.append(
            f'<text x="{_n(x + CELL_W / 2)}" y="{axis_y}" text-anchor="middle" class="t">'
            f"{escape(label)}</text>"
        )
    parts.append(
        f'<text x="{LEFT + COLS * CELL_W / 2}" y="{axis_y + 16}" text-anchor="middle" '
        'class="m">last sync age →</text>'
    )
    parts.append(
        f'<text x="14" y="{TOP + ROWS * CELL_H / 2}" text-anchor="middle" class="m" '
        f'transform="rotate(-90 14 {TOP + ROWS * CELL_H / 2})">days to soonest expiry →</text>'
    )
    return parts


def _dots(col: int, row: int, members: list[SiteFigure]) -> list[str]:
    x0, y0 = _cell_origin(col, row)
    step_x, step_y = (CELL_W - 8) / DOTS_PER_ROW, (CELL_H - 6) / DOT_ROWS
    parts = []
    for i, fig in enumerate(_order(members)):
        cx = x0 + 4 + step_x * (i % DOTS_PER_ROW + 0.5)
        cy = y0 + 3 + step_y * (i // DOTS_PER_ROW + 0.5)
        state = _state(fig)
        name = fig.site if len(fig.site) <= NAME_LIMIT else fig.site[: NAME_LIMIT - 1] + "…"
        parts.append(
            f'<circle cx="{_n(cx)}" cy="{_n(cy)}" r="3.4" class="{state[0]}">'
            f"<title>{escape(name)}: {state}</title></circle>"
        )
    return parts


def _bucket(col: int, row: int, members: list[SiteFigure]) -> list[str]:
    """A full cell: its count, and a bar split failed | unhealthy | ok."""
    x0, y0 = _cell_origin(col, row)
    tally = {s: 0 for s in STATES}
    for f in members:
        tally[_state(f)] += 1
    worst = next(s for s in STATES if tally[s])
    parts = [
        f'<text x="{_n(x0 + CELL_W / 2)}" y="{_n(y0 + 17)}" text-anchor="middle" '
        f'font-size="13" font-weight="bold" class="{worst[0]}">{len(members)}</text>'
    ]
    x, width = x0 + 6, CELL_W - 12
    for state in STATES:
        if not tally[state]:
            continue
        w = width * tally[state] / len(members)
        parts.append(
            f'<rect x="{_n(x)}" y="{_n(y0 + CELL_H - 11)}" width="{_n(max(w, 1.5))}" '
            f'height="6" class="{state[0]}"><title>{tally[state]} {state}</title></rect>'
        )
        x += w
    return parts


def _thresholds(grace: float, warning: float, lead: float | None) -> list[str]:
    """Dashed lines at the thresholds, labelled outside the cells (never over a dot)."""
    top, bottom = TOP - 4, PLOT_BOTTOM + GAP + CELL_H + 2
    x = _x_of_seconds(grace)
    parts = [
        f'<line x1="{_n(x)}" y1="{top}" x2="{_n(x)}" y2="{bottom}" class="l"/>',
        f'<text x="{_n(x + 3)}" y="{top - 1}" class="m">grace {_fmt_age(grace)}</text>',
    ]
    for days, label in _day_lines(warning, lead):
        y = _y_of_days(days)
        parts.append(
            f'<line x1="{LEFT - 2}" y1="{_n(y)}" x2="{PLOT_RIGHT + 2}" y2="{_n(y)}" class="l"/>'
        )
        parts.append(
            f'<text x="{PLOT_RIGHT + 6}" y="{_n(y + 4)}" class="m">{label} {days:g}d</text>'
        )
    return parts


def _day_lines(warning: float, lead: float | None) -> list[tuple[float, str]]:
    lines = [(warning, "warn")]
    if lead is not None and lead != warning:
        lines.append((lead, "rotate"))
    return lines


def _legend(grace: float, warning: float, lead: float | None) -> str:
    text = f"dashed: sync grace {_fmt_age(grace)} (continuous) · expiry warning {warning:g}d"
    if lead is not None and lead != warning:
        text += f" · sync password rotation lead {lead:g}d"
    text += " · shaded: past a threshold"
    return f'<text x="{LEFT}" y="{HEIGHT - 28}" class="m">{escape(text)}</text>'


def _footer(figures: Sequence[SiteFigure]) -> list[str]:
    """The two sites a person asks about first, by name."""
    y = HEIGHT - 12
    soonest = min(
        (f for f in figures if f.expiry_days is not None),
        key=lambda f: (f.expiry_days, f.site),
        default=None,
    )
    oldest = max(
        (f for f in figures if f.sync_age_seconds is not None),
        key=lambda f: (f.sync_age_seconds or 0.0, f.site),
        default=None,
    )
    unknown = sum(1 for f in figures if f.sync_age_seconds is None or f.expiry_days is None)
    bits = []
    if soonest is not None and soonest.expiry_days is not None:
        bits.append(f"soonest expiry: {soonest.site} ({soonest.expiry_days:.1f}d)")
    if oldest is not None and oldest.sync_age_seconds is not None:
        bits.append(f"oldest sync: {oldest.site} ({_fmt_age(oldest.sync_age_seconds)})")
    bits.append(f"{unknown} site(s) with an unknown value")
    text = "   ·   ".join(bits)
    return [f'<text x="{LEFT}" y="{y}" class="t">{escape(text)}</text>']


def data_uri(svg: str) -> str:
    """The SVG as a base64 data URI: the form the Prefect UI's markdown renders as an image
    (inline <svg> is stripped there; measured, docs/design.md)."""
    import base64

    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode("ascii")


def markdown_image(svg: str, alt: str) -> str:
    clean = " ".join(alt.split()).replace("[", "(").replace("]", ")")
    return f"![{clean}]({data_uri(svg)})"
