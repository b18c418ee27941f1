"""GenEval pages: the per-tag table, a bar plot and the failures drawn with their boxes; the converter's page.

Takes summaries and records as written by mirokit.evaluate.geneval_run / geneval_convert; nothing detects.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from mirokit.atomic import save_image_atomic, write_atomic
from mirokit.evaluate.report import html_page, html_table, plot_bars

_CSS = ".fails{display:flex;flex-wrap:wrap;gap:12px}.fails figure{width:260px;margin:0}figcaption{white-space:pre-wrap}"
_PALETTE = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324")


def draw_detections(image_path: Path, details: dict, path: Path, *, max_side: int = 256,
                    box_units: str = "pixels") -> Path:
    """A thumbnail of an image with the kept detections drawn: details = {class: [[x0, y0, x1, y1, score]]}
    (pixels, or image fractions with box_units="fractions") -> PNG at `path`. An unreadable image raises
    ValueError naming it; a failed write of the PNG raises OSError."""
    from PIL import Image, ImageDraw

    try:
        with Image.open(image_path) as im:
            image = im.convert("RGB")
    except OSError as err:  # unreadable input: ValueError; a failing write of the thumbnail stays an OSError
        raise ValueError(f"cannot read {image_path}: {err}") from err
    width, height = image.size
    factor = min(1.0, max_side / max(width, height))
    thumb = image.resize((max(1, round(width * factor)), max(1, round(height * factor))))
    sx, sy = (thumb.width, thumb.height) if box_units == "fractions" else (factor * 1.0, factor * 1.0)
    draw = ImageDraw.Draw(thumb)
    for k, (cls, boxes) in enumerate(sorted(details.items())):
        colour = _PALETTE[k % len(_PALETTE)]
        for box in boxes:
            x0, y0, x1, y1 = box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy
            draw.rectangle([x0, y0, max(x0, x1 - 1), max(y0, y1 - 1)], outline=colour, width=2)
            label = f"{cls} {box[4]:.2f}" if len(box) > 4 else cls
            draw.text((x0 + 2, y0 + 1), label, fill=colour)
    return save_image_atomic(path, thumb)


def tag_rows(summary: dict) -> list[list]:
    """[[tag, accuracy, correct, total], ..., ["overall (mean of tags)", overall, correct, total]]."""
    rows = [[tag, acc, summary["counts"][tag]["correct"], summary["counts"][tag]["total"]]
            for tag, acc in summary["per_tag"].items()]
    overall = summary["overall"] if summary["overall"] is not None else "n/a"
    rows.append(["overall (mean of tags)", overall, sum(r[2] for r in rows), sum(r[3] for r in rows)])
    return rows


def write_geneval_report(out: str | Path, summary: dict, records: list[dict], root: str | Path, *,
                         max_failures: int = 60, box_units: str = "pixels", title: str = "GenEval") -> Path:
    """Write `<out stem>.html`, `<out stem>_tags.png` and `<out stem>_failures/*.png` beside `out` -> the page."""
    out, root = Path(out), Path(root)
    stem = out.with_suffix("")
    figure = None
    if summary["per_tag"]:
        figure = plot_bars({"accuracy": {**summary["per_tag"], "overall": summary["overall"]}},
                           Path(f"{stem}_tags.png"), title=f"{title}: accuracy per tag")
    body = [f"<h1>{html.escape(title)}: {html.escape(str(root))}</h1>"]
    images, prompts = summary["images"], summary["prompts"]
    body.append(f"<p>{images['evaluated']} images evaluated, {images['errors']} unreadable; "
                f"{prompts['evaluated']} prompts, {prompts['skipped']} prompt folders skipped. "
                f"Image accuracy {summary['image_accuracy']}, prompt accuracy {summary['prompt_accuracy']}.</p>")
    body.append(html_table(["tag", "accuracy", "correct", "images"], tag_rows(summary)))
    if figure is not None:
        body.append(f"<img src='{html.escape(figure.name)}' alt='accuracy per tag'>")
    if summary.get("problems"):
        body.append("<h2>Problems (first 50)</h2><ul>" + "".join(f"<li>{html.escape(p)}</li>"
                                                               for p in summary["problems"]) + "</ul>")
    failures = [r for r in records if r.get("correct") is False]
    body.append(f"<h2>Failures ({len(failures)}; the first {min(len(failures), max_failures)} shown, "
                "kept detections drawn)</h2><div class='fails'>")
    folder = Path(f"{stem}_failures")
    for record in failures[:max_failures]:
        name = record["filename"].replace("/", "_").rsplit(".", 1)[0] + ".png"
        try:
            thumb = draw_detections(root / record["filename"], json.loads(record.get("details") or "{}"),
                                    folder / name, box_units=box_units)
            img = f"<img src='{html.escape(folder.name + '/' + thumb.name)}' alt='{html.escape(record['filename'])}'>"
        except ValueError as err:  # the image: a full disk (OSError) is not hidden in the page
            img = f"<p>(cannot draw: {html.escape(str(err).splitlines()[0])})</p>"
        caption = f"{record['filename']} [{record['tag']}]\n{record['prompt']}\n{record.get('reason', '')}"
        body.append(f"<figure>{img}<figcaption>{html.escape(caption)}</figcaption></figure>")
    body.append("</div>")
    settings = summary.get("settings")
    if settings:
        body.append(f"<h2>Settings</h2><pre>{html.escape(json.dumps(settings, indent=1))}</pre>")
    return write_atomic(Path(f"{stem}.html"), html_page(f"{title} results", body, css=_CSS))


def write_conversion_report(out_dir: str | Path, report: dict) -> Path:
    """OUT/conversion.html + OUT/conversion.png (parameters per component) for a converted detector."""
    out_dir = Path(out_dir)
    params = {k: v / 1e6 for k, v in report["parameters"].items()}
    figure = plot_bars({"parameters (M)": params}, out_dir / "conversion.png",
                       title="converted parameters per component (millions)")
    rows = [[k, v] for k, v in report["config"].items()] + [["source tensors", report["source_tensors"]],
                                                            ["model tensors", report["model_tensors"]],
                                                            ["key layout", report["layout"]]]
    body = ["<h1>GenEval detector: mmdet checkpoint -> transformers</h1>",
            f"<p>Source {html.escape(str(report.get('source')))} "
            f"(sha256 {html.escape(str(report.get('sha256')))}).</p>",
            html_table(["item", "value"], [[str(k), str(v)] for k, v in rows]),
            f"<img src='{figure.name}' alt='parameters per component'>",
            f"<h2>mirokit_geneval.json</h2><pre>{html.escape(json.dumps(report, indent=1))}</pre>"]
    return write_atomic(out_dir / "conversion.html", html_page("GenEval detector conversion", body))
