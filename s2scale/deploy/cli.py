"""``s2scale deploy``: render Kubernetes manifests, size a run, rerun the job with bounded retries.

The run options are those of ``s2scale upscale`` (same names, same meaning, same ``--config``
file), so the manifests describe exactly the run that ``s2scale upscale`` would do.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from s2scale.cli_options import (
    RUN_OPTION_NAMES,
    RUN_OPTIONS,
    handle_errors,
    run_config,
    with_options,
)

__all__ = ["deploy", "run_config"]


def _split_run_options(kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    run = {k: kwargs.pop(k) for k in RUN_OPTION_NAMES}
    return run, kwargs


@click.group()
def deploy() -> None:
    """Run s2scale on Kubernetes with the Dask operator: manifests, sizing, job retries."""


@deploy.command()
@with_options(RUN_OPTIONS)
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="Directory for base/ and overlays/ (kustomization.yaml files and resources).",
)
@click.option(
    "--store",
    default=None,
    help="Output Zarr store of the base, an object-store URL; overlays write beside "
    "it [s3://s2scale-output/mosaic.zarr].",
)
@click.option("--name", default=None, help="Name of the DaskJob [s2scale].")
@click.option("--namespace", default=None, help="Kubernetes namespace [s2scale].")
@click.option(
    "--image",
    default=None,
    help="Image of the GPU workers (deploy/Dockerfile, target cuda) "
    "[ghcr.io/s2scale/s2scale:VERSION-cuda].",
)
@click.option(
    "--cpu-image",
    default=None,
    help="Image of scheduler, job runner and CPU workers [--image with -cpu for -cuda].",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="GPU workers (one GPU each) of the base and the austria overlay [4].",
)
@click.option(
    "--worker-threads",
    type=click.IntRange(min=1),
    default=None,
    help="Threads per GPU worker [cluster.threads_per_worker].",
)
@click.option(
    "--worker-memory",
    default=None,
    help="Memory per GPU worker: container limit and --memory-limit [48GiB].",
)
@click.option("--worker-scratch", default=None, help="Scratch disk per worker [50GiB].")
@click.option(
    "--cpu-workers",
    type=click.IntRange(min=0),
    default=None,
    help="CPU-only workers for reading and writing [0].",
)
@click.option(
    "--gpu-node-selector",
    multiple=True,
    metavar="KEY=VALUE",
    help="Node label that GPU worker nodes carry (repeatable).",
)
@click.option(
    "--gpu-toleration",
    multiple=True,
    metavar="KEY[=VALUE][:EFFECT]",
    help="Taint of the GPU nodes to tolerate, e.g. nvidia.com/gpu:NoSchedule (repeatable).",
)
@click.option(
    "--secret",
    default=None,
    help="Secret with the object-store credentials [s2scale-object-store].",
)
@click.option(
    "--backoff-limit",
    type=click.IntRange(min=0),
    default=None,
    help="Reruns of the job after a failure, each resuming the store [3].",
)
@click.option(
    "--models-claim",
    default=None,
    help="PersistentVolumeClaim mounted read-only at /models (checkpoints, backbones).",
)
@click.option(
    "--small-aoi", default=None, help="AOI of the small-aoi overlay [11.9,47.4,12.1,47.6]."
)
@click.option(
    "--secret-key",
    multiple=True,
    metavar="KEY",
    help="A key the Secret must hold, checked by the runner before any work (repeatable) "
    "[AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY]; --secret-key '' checks none.",
)
@click.option(
    "--plan",
    "plan_json",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="JSON of `s2scale deploy plan --json` for --workers: the runner's deadline is its "
    "estimate times --deadline-margin plus 30 min.",
)
@click.option(
    "--deadline-margin",
    type=click.FloatRange(min=1),
    default=None,
    help="Factor on the plan's wall clock for the deadline [3].",
)
@click.option(
    "--deadline-hours",
    type=click.FloatRange(min=0.02),
    default=None,
    help="The runner's activeDeadlineSeconds in hours, instead of --plan's [24].",
)
@click.option(
    "--idle-timeout-s",
    type=click.IntRange(min=60),
    default=None,
    help="idleTimeout of the Dask cluster in seconds [3600].",
)
@click.option(
    "--tls/--no-tls",
    default=None,
    help="Dask TLS with certificates from --tls-secret [on in the austria overlay only].",
)
@click.option("--tls-secret", default=None, help="Secret with the TLS certificates [s2scale-tls].")
@click.option(
    "--operator-namespace",
    default=None,
    help="Namespace of the Dask operator (its idle check reaches the dashboard) [dask-operator].",
)
@click.option(
    "--metrics-namespace",
    default=None,
    help="Namespace of a Prometheus that scrapes the dashboards [none].",
)
@click.option("--priority-class", default=None, help="priorityClassName of every pod.")
@click.option(
    "--image-pull-secret",
    multiple=True,
    help="Secret for pulling the images from a private registry (repeatable).",
)
@click.option(
    "--gpu-affinity",
    multiple=True,
    metavar="KEY=VALUE[,VALUE...]",
    help="Node label that GPU worker nodes must carry with one of the values (repeatable).",
)
@click.option(
    "--validate/--no-validate",
    default=True,
    show_default=True,
    help="Check every manifest against Kubernetes' schemas and the operator's CRDs.",
)
@handle_errors
def render(out: Path, validate: bool, **kwargs: Any) -> None:
    """Write a kustomize base and overlays (small-aoi, austria) for one run configuration."""
    from s2scale.deploy.config import (
        DeployConfig,
        parse_affinity,
        parse_node_selector,
        parse_toleration,
    )
    from s2scale.deploy.layout import render_layout, write_layout
    from s2scale.deploy.render import render_objects
    from s2scale.deploy.runconfig import variants
    from s2scale.deploy.sizing import job_deadline_s
    from s2scale.errors import ConfigError

    run_opts, o = _split_run_options(kwargs)
    cfg = run_config(run_opts)
    given = {
        "store": o["store"],
        "name": o["name"],
        "namespace": o["namespace"],
        "image": o["image"],
        "cpu_image": o["cpu_image"],
        "gpu_workers": o["workers"],
        "worker_threads": o["worker_threads"],
        "worker_memory": o["worker_memory"],
        "worker_scratch": o["worker_scratch"],
        "cpu_workers": o["cpu_workers"],
        "secret": o["secret"],
        "backoff_limit": o["backoff_limit"],
        "models_claim": o["models_claim"],
        "small_aoi": o["small_aoi"],
        # scheduling options: the command line's, else the run config's cluster section
        "gpu_node_selector": tuple(
            parse_node_selector(v)
            for v in (o["gpu_node_selector"] or cfg.cluster.k8s_gpu_node_selector)
        ),
        "gpu_tolerations": tuple(parse_toleration(v) for v in o["gpu_toleration"]),
        "gpu_affinity": tuple(
            parse_affinity(v) for v in (o["gpu_affinity"] or cfg.cluster.k8s_gpu_affinity)
        ),
        "image_pull_secrets": tuple(o["image_pull_secret"] or cfg.cluster.k8s_image_pull_secrets),
        "secret_keys": tuple(k for k in o["secret_key"] if k) if o["secret_key"] else None,
        "idle_timeout_s": o["idle_timeout_s"],
        "tls": o["tls"],
        "tls_secret": o["tls_secret"],
        "operator_namespace": o["operator_namespace"],
        "metrics_namespace": o["metrics_namespace"],
        "priority_class": o["priority_class"] or cfg.cluster.k8s_priority_class,
    }
    deploy_cfg = DeployConfig(**{k: v for k, v in given.items() if v is not None})
    if o["plan_json"] is not None and o["deadline_hours"] is not None:
        raise ConfigError("give --plan or --deadline-hours, not both")
    if o["deadline_hours"] is not None:
        deadline = round(o["deadline_hours"] * 3600)
        deploy_cfg = dataclasses.replace(deploy_cfg, deadline_s=deadline)
    elif o["plan_json"] is not None:
        plan = json.loads(o["plan_json"].read_text())
        margin = {} if o["deadline_margin"] is None else {"margin": o["deadline_margin"]}
        deadline = job_deadline_s(plan, gpus=deploy_cfg.gpu_workers, **margin)
        deploy_cfg = dataclasses.replace(deploy_cfg, deadline_s=deadline)
    elif o["deadline_margin"] is not None:
        raise ConfigError("--deadline-margin needs --plan")
    files = render_layout(cfg, deploy_cfg)
    report: dict[str, Any] = {"out": str(out)}
    if validate:
        from s2scale.deploy.validate import KUBERNETES_VERSION, check_objects

        for variant, (v_cfg, v_deploy) in variants(cfg, deploy_cfg).items():
            suffix = "" if variant == "base" else f"-{variant}"
            check_objects(render_objects(v_cfg, v_deploy, suffix=suffix))
        report["validated"] = f"Kubernetes {KUBERNETES_VERSION} and the Dask operator's CRDs"
    written = write_layout(files, out)
    report["files"] = [str(p.relative_to(out)) for p in written]
    report["deadline_s"] = deploy_cfg.deadline_s
    report["apply"] = [
        f"kubectl apply -k {out / 'namespace'}",
        f"kubectl apply -k {out / 'overlays' / 'small-aoi'}",
        f"kubectl apply -k {out / 'overlays' / 'austria'}",
    ]
    click.echo(json.dumps(report, indent=2))


@deploy.command()
@with_options(RUN_OPTIONS)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="GPU workers that share the run.",
)
@click.option(
    "--records",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Folder of throughput-*.json benchmark records [$S2SCALE_THROUGHPUT_RECORDS].",
)
@click.option(
    "--bench-device",
    default=None,
    help="Use the records of this device: cpu, cuda or part of a GPU name (H200) "
    "[the newest record of the model].",
)
@click.option(
    "--from-cube",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    default=None,
    help="Plan from an 's2scale cube' store instead of searching.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@handle_errors
def plan(
    workers: int,
    records: Path | None,
    bench_device: str | None,
    from_cube: Path | None,
    as_json: bool,
    **kwargs: Any,
) -> None:
    """Print GPUs x hours of the run from its plan and the throughput benchmark records."""
    from s2scale.deploy.sizing import format_plan, plan_gpu_hours
    from s2scale.errors import ConfigError
    from s2scale.pipeline.estimate import THROUGHPUT_RECORDS_ENV

    run_opts, _ = _split_run_options(kwargs)
    cfg = run_config(run_opts)
    folder = records or os.environ.get(THROUGHPUT_RECORDS_ENV)
    if not folder:
        raise ConfigError(
            f"no benchmark records given: pass --records DIR or set {THROUGHPUT_RECORDS_ENV} "
            "(benchmarks/results of a checkout)"
        )
    result = plan_gpu_hours(
        cfg, gpus=workers, records=folder, device=bench_device, from_cube=from_cube
    )
    click.echo(json.dumps(result, indent=2) if as_json else format_plan(result))


@deploy.command(context_settings={"ignore_unknown_options": True})
@click.option(
    "--attempts",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="Runs allowed in all (the backoff limit plus one).",
)
@click.option(
    "--delay-s",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    help="Wait before the second run; doubled after each further failure.",
)
@click.option(
    "--secret-keys",
    envvar="S2SCALE_SECRET_KEYS",
    default="",
    help="Comma-separated variables that must be set before the first run [$S2SCALE_SECRET_KEYS].",
)
@click.option(
    "--secret",
    envvar="S2SCALE_SECRET_NAME",
    default=None,
    help="The Secret that provides them, named in the error [$S2SCALE_SECRET_NAME].",
)
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@handle_errors
def retry(
    attempts: int,
    delay_s: float,
    secret_keys: str,
    secret: str | None,
    command: tuple[str, ...],
) -> None:
    """Run COMMAND (after '--') until it succeeds, at most --attempts times.

    The job pod of a DaskJob runs 's2scale upscale' this way: each rerun resumes from the
    store's run manifest. Exits with COMMAND's last exit status; exits with 2 before any run
    when a variable of --secret-keys is missing or empty.
    """
    from s2scale.deploy.retry import check_secret_env, run_with_retries

    check_secret_env([k.strip() for k in secret_keys.split(",") if k.strip()], secret=secret)

    status = run_with_retries(
        command,
        attempts=attempts,
        delay_s=delay_s,
        report=lambda line: click.echo(f"s2scale deploy retry: {line}", err=True),
    )
    sys.exit(status)
