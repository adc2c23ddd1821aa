"""The published figures of other methods (``published.json``), printed beside ours by ``--compare``."""
import json
from pathlib import Path

from evaluation.report import markdown_table

PUBLISHED_FILE = Path(__file__).with_name("published.json")
COMPARED = ("lpips", "clip", "fvd")


def load_published(path: Path = PUBLISHED_FILE) -> list[dict]:
    """Rows ``{"method", "lpips", "clip", "fvd", "source", "protocol"}`` (None where not published)."""
    return json.loads(path.read_text())["methods"]


def comparison_markdown(table: dict, label: str, published: list[dict]) -> str:
    """Our averages as one row under the published rows (marked "as published"), then the sources."""
    metrics = [m for m in COMPARED if m in table]
    if not metrics:
        return "(--compare: the published tables give LPIPS, CLIP and FVD; none was computed)\n"
    rows = {f"{p['method']} (as published)": p for p in published}
    rows[f"{label} (this run)"] = {m: table[m]["average"] for m in metrics}
    comparison = {m: {name: row.get(m) for name, row in rows.items()} for m in metrics}
    sources = "\n".join(f"- {p['method']}: {p['source']}; {p['protocol']}" for p in published)
    return markdown_table(comparison, "Consistent4D test set, beside published figures", "method") + "\n" + sources + "\n"
