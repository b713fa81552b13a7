"""The catalog and dashboard load from an installed layout (what a wheel holds), not only from the checkout.

No `wheel` builder is available offline, so the test lays the packages out exactly as pyproject's
package-dir / packages / package-data say (what setuptools puts in the wheel) and imports from there
in a fresh interpreter without site-packages (so the editable install cannot help).
"""

from __future__ import annotations

import fnmatch
import shutil
import subprocess
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]


def wheel_layout(dest: Path) -> None:
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    dirs, data = cfg["package-dir"], cfg.get("package-data", {})
    for pkg in cfg["packages"]:
        top, *sub = pkg.split(".")
        src = ROOT / dirs.get(top, top) / Path(*sub) if sub else ROOT / dirs.get(top, top)
        out = dest / Path(*pkg.split("."))
        out.mkdir(parents=True, exist_ok=True)
        if not src.is_dir():
            continue
        for f in src.glob("*.py"):
            shutil.copy(f, out / f.name)
        for pattern in data.get(pkg, []):
            for f in src.glob("**/*"):
                rel = f.relative_to(src).as_posix()
                if f.is_file() and fnmatch.fnmatch(rel, pattern):
                    (out / rel).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy(f, out / rel)


def test_catalog_and_dashboard_load_from_an_installed_layout(tmp_path):
    site = tmp_path / "site"
    wheel_layout(site)
    assert (site / "exo_rkllm_models" / "qwen2.5-1.5b-instruct.toml").is_file()
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from exo_rkllm.catalog import load_catalog, get_card;"
        "import exo_rkllm.catalog as c; assert c.__file__.startswith(sys.argv[1]), c.__file__;"
        "cards = load_catalog(sys.argv[2]); print(len(cards));"
        "print(get_card('deepseek-r1-distill-qwen-1.5b', sys.argv[2]).memory_mb);"
        "from importlib import resources; import json;"
        "print(json.loads(resources.files('exo_rkllm').joinpath('dashboards/grafana.json').read_text())['uid'])"
    )
    res = subprocess.run([sys.executable, "-S", "-c", code, str(site), str(tmp_path / "models")],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["13", "1659", "exo-rkllm"]
