"""The layout's one-way dependencies: scripts -> stage modules -> model packages -> utils/ helpers."""
import subprocess
import sys

MODEL_AND_STAGE_PACKAGES = ("ldm", "rife", "recon", "assemble", "confidence", "convert", "prepare", "evaluation",
                            "tools")


def test_utils_imports_no_model_or_stage_package(repo_root):
    """Importing every utils/ module pulls in no package above it (a subprocess: a clean sys.modules)."""
    modules = sorted(p.stem for p in (repo_root / "utils").glob("*.py") if p.stem != "__init__")
    code = (f"import sys\nfor m in {modules!r}: __import__('utils.' + m)\n"
            f"print(sorted({{n.split('.')[0] for n in sys.modules}} & set({MODEL_AND_STAGE_PACKAGES!r})))")
    out = subprocess.run([sys.executable, "-c", code], cwd=repo_root, capture_output=True, text=True, check=True)
    assert len(modules) >= 8
    assert out.stdout.strip() == "[]"


def test_run_sh_checks_import_no_clip(repo_root):
    """The preflight (and every stage that builds no CLIP) skips open_clip's 1.5 s import: a typo costs a second."""
    code = "import sys, tools.preflight, ldm.pipeline\nprint('open_clip' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=repo_root, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
