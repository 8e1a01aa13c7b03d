"""The built wheel works without the checkout: demo and a national dry run from another folder.

The demo is the main job (the README's command 1): its outputs and scores are checked here.
The core install alone (no extras) runs ``s2scale upscale`` on the sample: there, every module
of a distribution that the wheel's core requirements do not pull in is hidden.

The wheel is built from this tree and installed into a fresh virtual environment; its
dependencies come from the test environment's site-packages, added as a plain path (so the
editable install of the checkout is not activated there). Commands run with the new
interpreter, from a temporary folder, with ``PYTHONPATH`` cleared.
"""

from __future__ import annotations

import email
import json
import os
import site
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
import rasterio
import rioxarray  # noqa: F401  (the .rio accessor)
import xarray as xr
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         str(REPO), "-w", str(tmp / "dist")],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (built,) = (tmp / "dist").glob("s2scale-*.whl")
    return built


def _venv(wheel: Path, venv: Path, hidden: frozenset[str] = frozenset()) -> Path:
    """A venv with the wheel installed, the test environment's packages on its path, and
    ``hidden`` top-level modules made unimportable."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", purelib,
         str(wheel)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    deps = [*site.getsitepackages(), sysconfig.get_paths()["purelib"]]
    Path(purelib, "_test_deps.pth").write_text("\n".join(dict.fromkeys(deps)) + "\n")
    if hidden:
        Path(purelib, "_hide_extras.py").write_text(HIDE_MODULE.format(sorted(hidden)))
        Path(purelib, "_hide_extras.pth").write_text("import _hide_extras\n")
    return python


@pytest.fixture(scope="module")
def wheel_python(wheel, tmp_path_factory) -> Path:
    return _venv(wheel, tmp_path_factory.mktemp("venv") / "venv")


HIDE_MODULE = """import sys

HIDDEN = frozenset({})


class HideExtras:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name.partition(".")[0] in HIDDEN:
            raise ModuleNotFoundError(f"No module named {{name!r}} (not in the core install)",
                                      name=name)
        return None


sys.meta_path.insert(0, HideExtras())
"""


def _core_distributions(wheel: Path) -> set[str]:
    """Installed distributions that the wheel's core requirements pull in, transitively."""
    from importlib import metadata

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        meta = email.message_from_bytes(zf.read(name))
    todo = [(Requirement(r), "") for r in meta.get_all("Requires-Dist") or []]
    seen: set[tuple[str, str]] = set()
    core: set[str] = set()
    while todo:
        req, extra = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": extra}):
            continue
        dist_name = canonicalize_name(req.name)
        for wanted in ("", *sorted(req.extras)):
            if (dist_name, wanted) in seen:
                continue
            seen.add((dist_name, wanted))
            try:
                requires = metadata.distribution(req.name).requires or []
            except metadata.PackageNotFoundError:
                continue
            core.add(dist_name)
            todo.extend((Requirement(r), wanted) for r in requires)
    return core


def _top_level(dist) -> set[str]:
    """Top-level import names of an installed distribution."""
    names = set((dist.read_text("top_level.txt") or "").split())
    for f in dist.files or []:
        first = f.parts[0]
        if len(f.parts) == 1 and first.endswith(".py"):
            names.add(first[:-3])
        elif len(f.parts) > 1 and first.isidentifier() and not first.endswith(".data"):
            names.add(first)
    return {n for n in names if n.isidentifier() and n != "__pycache__"}


@pytest.fixture(scope="module")
def core_python(wheel, tmp_path_factory) -> Path:
    """The wheel with its core requirements only: other distributions' modules are hidden."""
    from importlib import metadata

    from packaging.utils import canonicalize_name

    core = _core_distributions(wheel)
    kept: set[str] = set(sys.stdlib_module_names) | {"s2scale", "_distutils_hack", "pip"}
    extra: set[str] = set()
    for dist in metadata.distributions():
        name = canonicalize_name(dist.metadata["Name"] or "")
        (kept if name in core or name in ("s2scale", "pip", "setuptools") else extra).update(
            _top_level(dist)
        )
    hidden = frozenset(extra - kept)
    assert {"lpips", "stlpips_pytorch", "tensorboard"} <= hidden
    installed = {n for d in metadata.distributions() for n in _top_level(d)}
    assert {"IPython", "torchsummary"} & installed <= hidden
    assert "torch" not in hidden and "stackstac" not in hidden
    return _venv(wheel, tmp_path_factory.mktemp("core") / "venv", hidden)


def _run(python: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "S2SCALE_SHARED_DATA")}
    return subprocess.run(
        [str(python), "-m", "s2scale.cli", *args], cwd=cwd, env=env, capture_output=True,
        text=True, timeout=600,
    )  # fmt: skip


def test_wheel_is_used_and_holds_no_test_services(wheel_python, tmp_path):
    code = (
        "import importlib.util, s2scale, s2scale.sim, s2scale.train.recipes as r; "
        "print(s2scale.__file__); print(importlib.util.find_spec('s2scale.testing')); "
        "print(sorted(p.name for p in r.CONFIG_DIR.glob('*.yaml')))"
    )
    proc = subprocess.run([str(wheel_python), "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, check=True)  # fmt: skip
    where, testing, configs = proc.stdout.splitlines()
    assert str(REPO) not in where and "site-packages" in where
    assert testing == "None"
    shipped = sorted(p.name for p in (REPO / "s2scale" / "configs" / "train").glob("*.yaml"))
    assert configs == str(shipped) and "srresnet.yaml" in shipped


@pytest.mark.timeout(900)
def test_demo_and_dry_run_from_another_folder(wheel_python, tmp_path):
    """The README's command 1 (the main job) from the installed wheel, then a national dry run."""
    demo = _run(wheel_python, tmp_path, "demo", "--out", "demo")
    assert demo.returncode == 0, demo.stderr[-3000:]
    out = tmp_path / "demo"
    report = json.loads(demo.stdout)
    assert json.loads((out / "report.json").read_text())["metrics"] == report["metrics"]
    assert report["upscale"]["regions_computed"] == report["upscale"]["units"]
    assert "| sr |" in (out / "report.md").read_text()
    # The national mosaic: EPSG:3035, 5 m, uint16 reflectance of all four bands.
    ds = xr.open_zarr(out / "mosaic.zarr", consolidated=False)
    assert ds["reflectance"].rio.crs.to_epsg() == 3035
    assert list(ds.band.values) == ["blue", "green", "red", "nir"]
    with rasterio.open(out / "mosaic.tif") as cog:
        assert cog.profile["tiled"] and cog.overviews(1) and cog.crs.to_epsg() == 3035
    assert (out / "mosaic-stac" / "collection.json").is_file()
    with Image.open(out / "quicklook.png") as png:
        assert png.size[0] > 3 * png.size[1]  # four panels side by side
    m = report["metrics"]
    # The default model (SRResNet) beats bicubic perceptually and keeps PSNR close.
    assert m["perceptual_metric"].startswith(("LPIPS", "ST-LPIPS"))
    assert m["sr"]["perceptual"] < m["bicubic"]["perceptual"]
    assert m["sr"]["psnr_db"] > m["bicubic"]["psnr_db"] - 1.0
    assert report["seams"]["no_step"], report["seams"]
    assert report["upscale"]["random_weights"] is False
    sample = _run(wheel_python, tmp_path, "sample", "--national", "--out", "national")
    assert sample.returncode == 0, sample.stderr[-3000:]
    plan = _run(wheel_python, tmp_path, "upscale", "--stac", "national/catalog.json", "--aoi",
                "austria", "--datetime", "2024-06-01/2024-08-31", "--out", "austria.zarr",
                "--dry-run")  # fmt: skip
    assert plan.returncode == 0, plan.stderr[-3000:]
    summary = json.loads(plan.stdout)
    assert summary["units"] > 800 and 0 < summary["tasks_total"] <= 500_000
    assert not (tmp_path / "austria.zarr").exists()


@pytest.mark.timeout(900)
def test_core_install_alone_runs_upscale_on_the_sample(core_python, tmp_path):
    """A GPU worker's install (no extras): the sample, then s2scale upscale with the default
    model; commands that need an extra stop at once and name it."""
    from s2scale.sim import SAMPLE_AOI

    code = "import lpips"
    proc = subprocess.run([str(core_python), "-c", code], capture_output=True, text=True)
    assert proc.returncode != 0 and "not in the core install" in proc.stderr
    sample = _run(core_python, tmp_path, "sample", "--out", "sample")
    assert sample.returncode == 0, sample.stderr[-3000:]
    up = _run(core_python, tmp_path, "upscale", "--stac", "sample/catalog.json",
              "--aoi", ",".join(map(str, SAMPLE_AOI)), "--datetime", "2024-06-01/2024-08-31",
              "--out", "mosaic.zarr")  # fmt: skip
    assert up.returncode == 0, up.stderr[-3000:]
    report = json.loads(up.stdout)
    assert report["regions_computed"] == report["regions"] > 0
    ds = xr.open_zarr(tmp_path / "mosaic.zarr", consolidated=False)
    assert ds["reflectance"].rio.crs.to_epsg() == 3035
    assert (ds["reflectance"].values > 0).any()
    demo = _run(core_python, tmp_path, "demo", "--out", "demo")
    assert demo.returncode == 2 and "pip install 's2scale[eval]'" in demo.stderr
