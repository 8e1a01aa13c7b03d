"""Offline validation of rendered manifests: Kubernetes' own schemas and the Dask operator's CRDs.

- Core kinds (``Namespace``, ``ConfigMap``, ...) are checked with ``kubernetes-validate``'s
  strict schemas of :data:`KUBERNETES_VERSION` (unknown fields are errors, as with
  ``kubectl apply``'s default server-side field validation).
- ``DaskJob``, ``DaskCluster`` and ``DaskWorkerGroup`` are checked with ``jsonschema`` against
  the CRD schemas shipped in the dask-kubernetes wheel, made strict the same way (the API server
  rejects unknown fields of structural schemas), with ``metadata`` checked as an ``ObjectMeta``.
- What the operator makes of them is checked too: the objects come from the operator's own
  builders (``dask_kubernetes.operator.controller``): the job runner ``Pod``, the scheduler
  ``Deployment`` and ``Service``, the worker ``Deployment`` of each worker group, each validated as
  a core kind, and every ``$(VAR)`` in a container's arguments must be a variable of its ``env``
  (Kubernetes leaves unknown references unexpanded).

Needs ``pip install 's2scale[deploy]'`` (dask-kubernetes, kubernetes-validate, jsonschema).
"""

from __future__ import annotations

import copy
import functools
import importlib.resources
import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

import yaml

from s2scale.errors import ConfigError

__all__ = ["KUBERNETES_VERSION", "check_objects", "operator_children", "validate_objects"]

KUBERNETES_VERSION = "1.32.0"
"""Kubernetes version whose schemas the manifests are checked against (kubernetes-validate ships
1.25 to 1.37; 1.32 is a version all major managed offerings still support)."""

_CRD_DIR = "operator/deployment/helm/dask-kubernetes-operator/crds"
_DEFS_ID = "https://kubernetes.io/api/_definitions.json"
_OBJECT_META = f"{_DEFS_ID}#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
_VAR_REF = re.compile(r"(?<!\$)\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def _need(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(
            f"validating manifests needs {module.split('.')[0]}: pip install 's2scale[deploy]'"
        ) from err


def _strict(schema: Any) -> Any:
    """A copy of an OpenAPI schema in which objects with listed properties allow no others."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _strict(v) for k, v in schema.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def _schema_dir(version: str) -> Any:
    major_minor = ".".join(version.split(".")[:2])
    root = importlib.resources.files("kubernetes_validate") / "kubernetes-json-schema"
    path = root / f"v{major_minor}.0-local-strict"
    if not path.is_dir():
        raise ConfigError(f"kubernetes-validate has no schemas for Kubernetes {version}")
    return path


@functools.cache
def _crd_validators(version: str) -> dict[tuple[str, str], Any]:
    """``{(apiVersion, kind): jsonschema validator}`` of the operator's CRDs."""
    _need("dask_kubernetes")
    jsonschema = _need("jsonschema")
    from referencing import Registry, Resource

    defs = json.loads((_schema_dir(version) / "_definitions.json").read_text())
    registry = Resource.from_contents(defs) @ Registry()
    out = {}
    for path in (importlib.resources.files("dask_kubernetes") / _CRD_DIR).iterdir():
        if not path.name.endswith(".yaml"):
            continue
        crd = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for ver in crd["spec"]["versions"]:
            body = ver["schema"]["openAPIV3Schema"]
            schema = {
                "type": "object",
                "required": ["apiVersion", "kind", "metadata", "spec"],
                "additionalProperties": False,
                "properties": {
                    "apiVersion": {"const": f"{group}/{ver['name']}"},
                    "kind": {"const": kind},
                    "metadata": {"$ref": _OBJECT_META},
                    "spec": _strict(body["properties"]["spec"]),
                },
            }
            out[(f"{group}/{ver['name']}", kind)] = jsonschema.Draft202012Validator(
                schema, registry=registry
            )
    return out


def _where(obj: dict[str, Any]) -> str:
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


def _core_errors(obj: dict[str, Any], version: str) -> list[str]:
    kv = _need("kubernetes_validate")
    from kubernetes_validate.utils import SchemaNotFoundError, ValidationError

    try:
        kv.validate(obj, version, strict=True)
    except ValidationError as err:
        path = ".".join(str(p) for p in err.path)
        return [f"{_where(obj)}: {path}: {err.message}"]
    except SchemaNotFoundError as err:
        return [f"{_where(obj)}: {err.message}"]
    return []


def _crd_errors(obj: dict[str, Any], version: str) -> list[str]:
    validator = _crd_validators(version).get((obj.get("apiVersion"), obj.get("kind")))
    if validator is None:
        return [f"{_where(obj)}: no CRD of the Dask operator defines {obj.get('apiVersion')}"]
    errors = [
        f"{_where(obj)}: {'.'.join(str(p) for p in e.absolute_path)}: {e.message}"
        for e in sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path))
    ]
    if obj.get("kind") in ("DaskJob", "DaskCluster"):
        from dask_kubernetes.exceptions import ValidationError
        from dask_kubernetes.operator.validation import validate_cluster_name

        try:
            validate_cluster_name(obj["metadata"]["name"])
        except ValidationError as err:
            errors.append(f"{_where(obj)}: {err.message}")
    return errors


def operator_children(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """What the Dask operator creates for a ``DaskJob``, ``DaskCluster`` or ``DaskWorkerGroup``.

    Built with the operator's own functions, so the environment it injects
    (``DASK_SCHEDULER_ADDRESS``, ``DASK_WORKER_NAME``) and its naming are the operator's.
    """
    _need("dask_kubernetes")
    from dask_kubernetes.operator.controller import controller as op

    kind, meta = obj["kind"], obj["metadata"]
    if kind not in ("DaskJob", "DaskCluster", "DaskWorkerGroup"):
        return []
    name, namespace = meta["name"], meta.get("namespace", "default")
    spec = copy.deepcopy(obj["spec"])

    def merged(part: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
        # the operator adds a part's own metadata to the object's (controller.py)
        extra = part.get("metadata", {})
        annotations = {**meta.get("annotations", {}), **extra.get("annotations", {})}
        return annotations, {**meta.get("labels", {}), **extra.get("labels", {})}

    if kind == "DaskJob":
        cluster = op.build_cluster_spec(
            name,
            spec["cluster"]["spec"]["worker"],
            spec["cluster"]["spec"]["scheduler"],
            *merged(spec["cluster"]),
        )
        cluster["metadata"]["namespace"] = namespace
        # as the operator (dask-kubernetes 2026.3): the DaskJob's cluster.spec.idleTimeout is not
        # copied to the DaskCluster it creates
        pod = op.build_job_pod_spec(
            name, name, namespace, spec["job"]["spec"], *merged(spec["job"])
        )
        return [cluster, pod, *operator_children(cluster)]
    if kind == "DaskCluster":
        sched = spec.get("scheduler", {})
        group = op.build_default_worker_group_spec(name, spec["worker"], *merged(spec["worker"]))
        group["metadata"]["namespace"] = namespace
        return [
            op.build_scheduler_deployment_spec(name, sched.get("spec"), *merged(sched)),
            op.build_scheduler_service_spec(name, sched.get("service"), *merged(sched)),
            group,
            *operator_children(group),
        ]
    if kind == "DaskWorkerGroup":
        worker = spec["worker"]
        return [
            op.build_worker_deployment_spec(
                meta["name"],
                namespace,
                spec["cluster"],
                "0123456789",
                worker["spec"],
                *merged(worker),
            )
        ]


def _pod_specs(obj: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if obj["kind"] == "Pod":
        yield obj["spec"]
    elif obj["kind"] == "Deployment":
        yield obj["spec"]["template"]["spec"]


def _reference_errors(obj: dict[str, Any]) -> list[str]:
    """``$(VAR)`` in args or command that the container's ``env`` does not define."""
    errors = []
    for pod in _pod_specs(obj):
        for c in pod.get("containers", []) + pod.get("initContainers", []):
            defined = {e["name"] for e in c.get("env", [])}
            for arg in c.get("command", []) + c.get("args", []):
                for var in _VAR_REF.findall(arg):
                    if var not in defined:
                        errors.append(
                            f"{_where(obj)}: container {c['name']!r} refers to $({var}) in "
                            f"{arg!r} but its env defines no {var}"
                        )
    return errors


def validate_objects(
    objects: Iterable[dict[str, Any]], *, kubernetes_version: str = KUBERNETES_VERSION
) -> list[str]:
    """Every problem of the manifests (empty when they are valid), one line each.

    Operator kinds are checked against their CRD, then the objects the operator would create
    from them (see :func:`operator_children`) as core kinds.
    """
    errors: list[str] = []
    for obj in objects:
        if str(obj.get("apiVersion", "")).startswith("kubernetes.dask.org/"):
            found = _crd_errors(obj, kubernetes_version)
            errors += found
            if found:
                continue
            for child in operator_children(obj):
                if child["apiVersion"].startswith("kubernetes.dask.org/"):
                    errors += _crd_errors(child, kubernetes_version)
                else:
                    errors += [
                        f"{_where(obj)} -> {e}"
                        for e in _core_errors(child, kubernetes_version) + _reference_errors(child)
                    ]
        else:
            errors += _core_errors(obj, kubernetes_version) + _reference_errors(obj)
    return errors


def check_objects(
    objects: Iterable[dict[str, Any]], *, kubernetes_version: str = KUBERNETES_VERSION
) -> None:
    """Raise :class:`ConfigError` listing every problem of the manifests (see above)."""
    errors = validate_objects(objects, kubernetes_version=kubernetes_version)
    if errors:
        raise ConfigError(
            f"the manifests do not validate against Kubernetes {kubernetes_version} and the Dask "
            "operator's CRDs:\n  " + "\n  ".join(errors)
        )
