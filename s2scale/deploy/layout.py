"""The kustomize layout of a run: base, overlays and namespace as YAML files.

Layout written by :func:`write_layout` (``s2scale deploy render --out DIR``)::

    DIR/namespace/                   namespace.yaml: applied once, owned by no overlay
    DIR/base/kustomization.yaml      run-config.yaml, daskjob.yaml, network-policies.yaml,
                                     disruption-budgets.yaml (+ io-workers.yaml with CPU workers)
    DIR/overlays/small-aoi/          the base on a small AOI with one GPU worker (smoke test)
    DIR/overlays/austria/            the base on all of Austria with ``gpu_workers`` GPUs, TLS on

Each overlay is the base with a name suffix and RFC 6902 patches (:func:`json_patch`) computed
from the objects of its variant (:func:`~s2scale.deploy.runconfig.variants`,
:func:`~s2scale.deploy.render.render_objects`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from s2scale.config import RunConfig
from s2scale.deploy.config import OVERLAYS, DeployConfig
from s2scale.deploy.render import DASK_API, namespace_objects, render_objects
from s2scale.deploy.runconfig import variants

__all__ = [
    "HEADER",
    "canonical",
    "json_patch",
    "objects_from_yaml",
    "render_layout",
    "write_layout",
]

log = logging.getLogger(__name__)

HEADER = "# Rendered by `s2scale deploy render`: change its options and render again.\n"
"""First line of every rendered file (files starting with it may be replaced by a new render)."""


def json_patch(old: Any, new: Any, path: str = "") -> list[dict[str, Any]]:
    """RFC 6902 operations turning ``old`` into ``new`` (maps recursively, lists as a whole).

    Examples
    --------
    >>> json_patch({"a": 1, "b": {"c": 2}}, {"a": 1, "b": {"c": 3}, "d": 4})
    [{'op': 'replace', 'path': '/b/c', 'value': 3}, {'op': 'add', 'path': '/d', 'value': 4}]
    """
    if isinstance(old, dict) and isinstance(new, dict):
        ops: list[dict[str, Any]] = []
        for key in old:
            p = f"{path}/{str(key).replace('~', '~0').replace('/', '~1')}"
            ops += (
                json_patch(old[key], new[key], p) if key in new else [{"op": "remove", "path": p}]
            )
        for key in new:
            if key not in old:
                p = f"{path}/{str(key).replace('~', '~0').replace('/', '~1')}"
                ops.append({"op": "add", "path": p, "value": new[key]})
        return ops
    return [] if old == new else [{"op": "replace", "path": path or "/", "value": new}]


class _Dumper(yaml.SafeDumper):
    """Block style for multi-line strings (the embedded run.yaml stays readable)."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def _dump(docs: list[Any], comment: str = "") -> str:
    body = "---\n".join(yaml.dump(d, Dumper=_Dumper, sort_keys=False, width=100) for d in docs)
    return HEADER + "".join(f"# {line}\n" for line in comment.splitlines()) + body


def _key(obj: Mapping[str, Any]) -> tuple[str, str]:
    return obj["kind"], obj["metadata"]["name"]


_FILES = {
    "ConfigMap": "run-config.yaml",
    "DaskJob": "daskjob.yaml",
    "DaskWorkerGroup": "io-workers.yaml",
    "NetworkPolicy": "network-policies.yaml",
    "PodDisruptionBudget": "disruption-budgets.yaml",
}


def _name_references() -> dict[str, Any]:
    """Configuration of kustomize: where the DaskJob and its worker group name other objects."""
    job = "spec/job/spec"
    # a "/" inside a map key is written "\/" in kustomize paths
    selector = "spec/cluster/spec/scheduler/service/selector"
    label = "matchLabels/dask.org\\/cluster-name"
    return {
        "nameReference": [
            {
                "kind": "ConfigMap",
                "version": "v1",
                "fieldSpecs": [
                    {"kind": "DaskJob", "path": f"{job}/volumes/configMap/name"},
                    {
                        "kind": "DaskJob",
                        "path": f"{job}/containers/env/valueFrom/configMapKeyRef/name",
                    },
                ],
            },
            {
                "kind": "DaskJob",
                "group": "kubernetes.dask.org",
                "fieldSpecs": [
                    {"kind": "DaskWorkerGroup", "path": "spec/cluster"},
                    {
                        "kind": "DaskJob",
                        "path": f"{selector}/dask.org\\/cluster-name",
                    },
                    {"kind": "NetworkPolicy", "path": f"spec/podSelector/{label}"},
                    {"kind": "NetworkPolicy", "path": f"spec/ingress/from/podSelector/{label}"},
                    {"kind": "PodDisruptionBudget", "path": f"spec/selector/{label}"},
                ],
            },
        ]
    }


def render_layout(cfg: RunConfig, deploy: DeployConfig) -> dict[str, str]:
    """The files of the kustomize base and overlays: ``{relative path: YAML text}``.

    Each overlay is ``../../base`` with ``nameSuffix: -<overlay>`` and RFC 6902 patches computed
    from the difference between the base and the overlay's own rendering, so that
    ``kubectl kustomize overlays/<overlay>`` equals :func:`render_objects` of that variant.
    """
    found = variants(cfg, deploy)
    base = render_objects(*found["base"])
    files: dict[str, str] = {
        "namespace/namespace.yaml": _dump(namespace_objects(deploy)),
        "namespace/kustomization.yaml": _dump(
            [
                {
                    "apiVersion": "kustomize.config.k8s.io/v1beta1",
                    "kind": "Kustomization",
                    "resources": ["namespace.yaml"],
                }
            ],
            comment="Apply once, before the Secrets (deploy/README.md); no overlay owns it.",
        ),
    }
    by_file: dict[str, list[dict]] = {}
    for obj in base:
        by_file.setdefault(_FILES[obj["kind"]], []).append(obj)
    for fname, docs in by_file.items():
        files[f"base/{fname}"] = _dump(docs)
    files["base/kustomization.yaml"] = _dump(
        [
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": list(by_file),
            }
        ],
        comment=f"The run of {cfg.catalog.aoi!r} as configured; apply with kubectl apply -k.",
    )
    old = {_key(o): o for o in base}
    for overlay in OVERLAYS:
        objects = {_key(o): o for o in render_objects(*found[overlay])}
        if set(objects) != set(old):  # pragma: no cover - variants keep the same objects
            raise AssertionError(f"overlay {overlay} renders other objects than the base")
        patches = []
        for key, obj in objects.items():
            ops = json_patch(old[key], obj)
            if not ops:
                continue
            kind, name = key
            fname = f"patch-{_FILES[kind]}"
            files[f"overlays/{overlay}/{fname}"] = _dump([ops])
            target = {"kind": kind, "name": name}
            if obj["apiVersion"] == DASK_API:
                target = {"group": "kubernetes.dask.org", "version": "v1", **target}
            patches.append({"path": fname, "target": target})
        files[f"overlays/{overlay}/kustomizeconfig.yaml"] = _dump([_name_references()])
        _, o_deploy = found[overlay]
        files[f"overlays/{overlay}/kustomization.yaml"] = _dump(
            [
                {
                    "apiVersion": "kustomize.config.k8s.io/v1beta1",
                    "kind": "Kustomization",
                    "resources": ["../../base"],
                    "nameSuffix": f"-{overlay}",
                    "configurations": ["kustomizeconfig.yaml"],
                    "patches": patches,
                }
            ],
            comment=f"{overlay}: AOI {found[overlay][0].catalog.aoi!r}, {o_deploy.gpu_workers} GPU "
            f"worker{'s' * (o_deploy.gpu_workers != 1)}, output {o_deploy.store}",
        )
    return files


def write_layout(files: Mapping[str, str], out: str | Path) -> list[Path]:
    """Write :func:`render_layout`'s files under ``out``; return their paths.

    Files of an earlier render that this one no longer produces (recognised by :data:`HEADER`)
    are removed; other files are left alone.
    """
    root = Path(out)
    written = []
    for rel, text in sorted(files.items()):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    keep = {root / rel for rel in files}
    old = [
        *root.glob("namespace/*.yaml"),
        *root.glob("base/*.yaml"),
        *root.glob("overlays/*/*.yaml"),
    ]
    for stale in sorted(old):
        if stale not in keep and stale.read_text().startswith(HEADER):
            log.info("removing %s (not part of this render)", stale)
            stale.unlink()
    return written


def objects_from_yaml(text: str) -> list[dict[str, Any]]:
    """The documents of a multi-document YAML text (``kubectl kustomize`` output), in order."""
    return [d for d in yaml.safe_load_all(text) if d]


def canonical(obj: Any) -> str:
    """A key-order independent text of an object, for comparisons."""
    return json.dumps(obj, sort_keys=True)
