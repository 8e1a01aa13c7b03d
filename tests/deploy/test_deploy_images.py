"""The images of deploy/Dockerfile, checked statically (no container runtime in the tests):
pinned bases, the fixed non-root user the manifests run as, an allowlist build context."""

from __future__ import annotations

import re
from pathlib import Path

from s2scale.deploy.config import RUN_AS_UID
from s2scale.deploy.pods import TORCH_HOME

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = (REPO / "deploy" / "Dockerfile").read_text()
SETUP = (REPO / "deploy" / "image-setup.sh").read_text()


def _instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE)
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _stages() -> dict[str, list[tuple[str, str]]]:
    stages: dict[str, list[tuple[str, str]]] = {}
    current = None
    for word, rest in _instructions():
        if word == "FROM":
            current = rest.split(" AS ")[-1].strip()
            stages[current] = []
        elif current is not None:
            stages[current].append((word, rest))
    return stages


def test_two_targets_on_pinned_bases():
    args = dict(
        rest.split("=", 1)
        for word, rest in _instructions()
        if word == "ARG" and "=" in rest and rest.split("=")[0].endswith("_BASE")
    )
    assert set(args) == {"CUDA_BASE", "CPU_BASE"}
    for ref in args.values():
        tag = ref.rpartition("/")[2].partition(":")[2]
        assert tag and tag != "latest" and any(c.isdigit() for c in tag), ref
    assert re.fullmatch(r"nvidia/cuda:\d+\.\d+\.\d+-\w+-ubuntu24\.04", args["CUDA_BASE"])
    assert args["CPU_BASE"].endswith("24.04")  # the same Ubuntu, so the same Python
    assert set(_stages()) == {"cpu", "cuda"}


def test_each_image_runs_as_the_fixed_non_root_user_without_downloads():
    for name, steps in _stages().items():
        users = [rest for word, rest in steps if word == "USER"]
        assert users == [f"{RUN_AS_UID}:{RUN_AS_UID}"], name  # numeric: runAsNonRoot can check
        env = " ".join(rest for word, rest in steps if word == "ENV")
        assert f"TORCH_HOME={TORCH_HOME}" in env, name
        assert ("ENTRYPOINT", '["/usr/bin/tini", "--"]') in steps, name
        assert any(w == "RUN" and "image-setup.sh" in r for w, r in steps), name
    assert f"uid={RUN_AS_UID}" in SETUP and 'useradd --uid "$uid"' in SETUP
    assert '"/src[gpu,deploy]"' in SETUP  # dask-cuda in both: the same dask everywhere
    assert "weights_path(name).is_file()" in SETUP  # the shipped weights are checked in the build


def test_build_context_is_an_allowlist_of_what_the_dockerfile_copies():
    lines = [
        ln.strip()
        for ln in (REPO / ".dockerignore").read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    assert lines[0] == "*"
    allowed = {ln[1:].rstrip("/") for ln in lines if ln.startswith("!")}
    copied = set()
    for word, rest in _instructions():
        if word == "COPY":
            copied.update(p.rstrip("/") for p in rest.split()[:-1] if not p.startswith("--"))
    assert copied == allowed
    for path in allowed:
        assert (REPO / path).exists(), path
    # what must never reach an image
    for secret_like in (".venv", ".git", ".ci", "tests", "benchmarks"):
        assert secret_like not in allowed
