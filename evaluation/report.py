"""Results as files: the official JSON schema, a details file and a Markdown table.

``metrics.json`` is what the official scripts write, ``{"clip": {"<object>": v, ..., "average": v},
"lpips": ..., "psnr": ..., "ssim": ...}``, plus ``"fvd"`` (their second script's numbers), so
tools reading either can read ours. Per-view and per-frame values and the protocol used go to
``metrics_details.json`` beside it.
"""
from pathlib import Path

from evaluation.protocol import HIGHER_IS_BETTER, METRICS
from utils.images import atomic_path, write_json

# The official script's key order, then FVD.
JSON_ORDER = ("clip", "lpips", "psnr", "ssim", "fvd")
DECIMALS = {"psnr": 2, "ssim": 4, "lpips": 4, "clip": 4, "fvd": 2}


def official_json(results: dict[str, dict], metrics: list[str]) -> dict:
    """``{metric: {object: v, "average": v}}`` from per-object results (``score_object`` outputs)."""
    table = {}
    for metric in (m for m in JSON_ORDER if m in metrics):
        per_object = {name: result["mean"][metric] for name, result in results.items()}
        table[metric] = {**per_object, "average": sum(per_object.values()) / len(per_object)}
    return table


def output_paths(output_file: str | Path) -> dict[str, Path]:
    """``metrics.json`` -> itself, ``metrics_details.json``, ``metrics.md`` and the cache folder."""
    output_file = Path(output_file)
    stem = output_file.with_suffix("")
    return {
        "json": output_file,
        "details": stem.with_name(stem.name + "_details.json"),
        "markdown": stem.with_suffix(".md"),
        "cache": stem.with_name(f".{stem.name}_objects"),
    }


def _arrow(metric: str) -> str:
    return "↑" if HIGHER_IS_BETTER[metric] else "↓"


def _cell(metric: str, value: float | None) -> str:
    return "–" if value is None else f"{value:.{DECIMALS[metric]}f}"


def markdown_table(table: dict, title: str = "", row_label: str = "object") -> str:
    """Objects (or ``row_label`` rows) as rows, in the table's order, metrics as columns."""
    metrics = [m for m in METRICS if m in table]
    objects = list(next(iter(table.values())))
    lines = [f"### {title}", ""] if title else []
    lines.append(f"| {row_label} | " + " | ".join(f"{m.upper()} {_arrow(m)}" for m in metrics) + " |")
    lines.append("|---|" + "---:|" * len(metrics))
    for obj in objects:
        name = f"**{obj}**" if obj == "average" else obj
        lines.append(f"| {name} | " + " | ".join(_cell(m, table[m][obj]) for m in metrics) + " |")
    return "\n".join(lines) + "\n"


def write_report(output_file: str | Path, table: dict, details: dict, markdown: str) -> dict[str, Path]:
    """Write the three files atomically; return their paths."""
    paths = output_paths(output_file)
    write_json(paths["json"], table, indent=3)
    write_json(paths["details"], details, indent=2)
    with atomic_path(paths["markdown"]) as tmp:
        tmp.write_text(markdown)
    return paths
