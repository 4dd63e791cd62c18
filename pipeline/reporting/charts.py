"""The bar charts of report.html as inline SVG: labels are text, drawn with the browser's fonts."""
import html

import pandas as pd

from pipeline.reporting.tables import cell_text

BAR, BAR_COMPARE = "#c0392b", "#9aa5b1"


def _text_width(text, size):
    """Rough rendered width of ``text``: CJK characters one em, others 0.6 em."""
    return sum(size if ord(ch) > 0x2E7F else 0.6 * size for ch in str(text))


def svg_hbar(labels, values, shares=None, title="", max_rows=15):
    """A horizontal bar chart (SVG text) of ``values`` by ``labels``, with shares (%) beside the bars."""
    labels, values = list(labels)[:max_rows], [float(v) for v in list(values)[:max_rows]]
    shares = list(shares)[:max_rows] if shares is not None else [None] * len(values)
    size, row, bar_w = 13, 24, 420
    label_w = int(max([_text_width(l, size) for l in labels] + [40])) + 12
    width, height = label_w + bar_w + 130, row * len(labels) + 16
    top = max(values + [1.0])
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" class="chart-svg" width="{width}" '
             f'height="{height}" viewBox="0 0 {width} {height}"><title>{html.escape(title)}</title>']
    for i, (label, value, share) in enumerate(zip(labels, values, shares)):
        y = 8 + i * row
        w = bar_w * value / top
        value_text = cell_text(int(value)) + (f"（{cell_text(share)}%）" if share is not None and not pd.isna(share)
                                              else "")
        parts.append(f'<text x="{label_w - 8}" y="{y + 16}" font-size="{size}" text-anchor="end">'
                     f'{html.escape(str(label))}</text>'
                     f'<rect class="bar" x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row - 7}" fill="{BAR}"/>'
                     f'<text x="{label_w + w + 6:.1f}" y="{y + 16}" font-size="{size - 1}" fill="#333">'
                     f'{html.escape(value_text)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def svg_months(labels, values, compare, title="", highlight=()):
    """Monthly bars (red) with the same months a year before (grey) beside them, as SVG text."""
    labels, values, compare = list(labels), [float(v) for v in values], [float(v) for v in compare]
    size, group, bars, left, top_margin = 12, 56, 220, 44, 22
    base = top_margin + bars                      # y of the axis
    width, height = left + group * len(labels) + 20, base + 62
    top = max(values + compare + [1.0])
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" class="chart-svg" width="{width}" '
             f'height="{height}" viewBox="0 0 {width} {height}"><title>{html.escape(title)}</title>',
             f'<line x1="{left}" y1="{base}" x2="{width - 10}" y2="{base}" stroke="#666"/>']
    for tick in (0.5, 1.0):
        y = base - bars * tick
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="{size - 1}" text-anchor="end">'
                     f'{int(round(top * tick))}</text>'
                     f'<line x1="{left}" y1="{y:.1f}" x2="{width - 10}" y2="{y:.1f}" stroke="#ddd"/>')
    for i, (label, value, before) in enumerate(zip(labels, values, compare)):
        x = left + 8 + i * group
        for offset, v, colour in ((0, before, BAR_COMPARE), (20, value, BAR)):
            h = bars * v / top
            parts.append(f'<rect class="bar" x="{x + offset}" y="{base - h:.1f}" width="18" '
                         f'height="{h:.1f}" fill="{colour}"/>')
        h = bars * value / top
        parts.append(f'<text x="{x + 29}" y="{base - h - 4:.1f}" font-size="{size - 2}" '
                     f'text-anchor="middle">{int(value)}</text>')
        weight = ' font-weight="bold"' if label in highlight else ""
        parts.append(f'<text x="{x + 19}" y="{base + 18}" font-size="{size - 1}" '
                     f'text-anchor="middle"{weight}>{html.escape(label[2:])}</text>')
    legend_y = base + 44
    parts.append(f'<rect x="{left}" y="{legend_y - 10}" width="12" height="12" fill="{BAR}"/>'
                 f'<text x="{left + 16}" y="{legend_y}" font-size="{size}">当月件次</text>'
                 f'<rect x="{left + 100}" y="{legend_y - 10}" width="12" height="12" fill="{BAR_COMPARE}"/>'
                 f'<text x="{left + 116}" y="{legend_y}" font-size="{size}">上年同月</text></svg>')
    return "".join(parts)


def chart_svg(table, max_rows):
    """The chart ``table.chart`` asks for (SVG text), or "" for none or nothing to draw."""
    spec, frame = table.chart, table.frame
    if not spec or frame.empty:
        return ""
    if spec["kind"] == "months":
        highlight = set(frame.loc[frame["本期"] == "是", "月份"])
        return svg_months(frame[spec["label"]], frame[spec["value"]], frame[spec["compare"]],
                          table.title, highlight)
    if spec.get("skip_last"):
        frame = frame.iloc[:-1]
    if spec.get("exclude"):
        frame = frame[frame[spec["label"]] != spec["exclude"]]
    frame = frame[frame[spec["value"]] > 0]
    if frame.empty:
        return ""
    return svg_hbar(frame[spec["label"]], frame[spec["value"]], frame.get(spec.get("share")),
                    table.title, max_rows)
