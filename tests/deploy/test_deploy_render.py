"""The rendered manifests: valid offline, locked down, credentials only from the Secret, GPU
workers on dask-cuda, the job resuming under bounded retries, overlays equal to direct renders."""

from __future__ import annotations

import dataclasses
import json
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from s2scale.cli import main
from s2scale.config import RunConfig
from s2scale.deploy.config import (
    RUN_AS_UID,
    DeployConfig,
    parse_node_selector,
    parse_toleration,
)
from s2scale.deploy.layout import (
    HEADER,
    canonical,
    objects_from_yaml,
    render_layout,
    write_layout,
)
from s2scale.deploy.render import namespace_objects, render_objects
from s2scale.deploy.runconfig import variants
from s2scale.deploy.validate import (
    KUBERNETES_VERSION,
    check_objects,
    operator_children,
    validate_objects,
)
from s2scale.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
STAC = "https://earth-search.aws.element84.com/v1"
# the command that rendered deploy/kubernetes (deploy/README.md and deploy/austria.yaml show it)
CHECKED_IN = (
    "s2scale deploy render --config deploy/austria.yaml --store "
    "s3://s2scale-output/2024-summer/mosaic.zarr --workers 8 --gpu-toleration "
    "nvidia.com/gpu:NoSchedule --plan deploy/austria-plan.json --out deploy/kubernetes"
)


def _cfg(**catalog) -> RunConfig:
    return RunConfig().replace("catalog", stac=STAC, **catalog)


RICH = DeployConfig(
    store="s3://bucket/runs/mosaic.zarr",
    name="sr-test",
    namespace="sr",
    image="registry.example.org:5000/s2scale:1.2.3-cuda",
    gpu_workers=3,
    worker_threads=6,
    worker_memory="40GiB",
    cpu_workers=2,
    gpu_node_selector=(parse_node_selector("nvidia.com/gpu.present=true"),),
    gpu_tolerations=(parse_toleration("nvidia.com/gpu:NoSchedule"),),
    models_claim="s2scale-models",
    backoff_limit=5,
)


def _all(cfg: RunConfig, deploy: DeployConfig) -> list[dict]:
    """Objects of every variant plus everything the operator creates from them."""
    out = []
    for variant, (c, d) in variants(cfg, deploy).items():
        objs = render_objects(c, d, suffix="" if variant == "base" else f"-{variant}")
        out += objs + [child for o in objs for child in operator_children(o)]
    return out


def _pods(objects: list[dict]) -> Iterator[tuple[str, dict]]:
    """``(where, pod spec)`` of every pod that the objects define or make."""
    for o in objects:
        name = f"{o['kind']}/{o['metadata']['name']}"
        if o["kind"] == "DaskJob":
            yield f"{name} job", o["spec"]["job"]["spec"]
            yield f"{name} worker", o["spec"]["cluster"]["spec"]["worker"]["spec"]
            yield f"{name} scheduler", o["spec"]["cluster"]["spec"]["scheduler"]["spec"]
        elif o["kind"] in ("DaskWorkerGroup",):
            yield f"{name} worker", o["spec"]["worker"]["spec"]
        elif o["kind"] == "Pod":
            yield name, o["spec"]
        elif o["kind"] == "Deployment":
            yield name, o["spec"]["template"]["spec"]


def _containers(objects: list[dict]) -> Iterator[tuple[str, dict, dict]]:
    for where, pod in _pods(objects):
        for c in pod["containers"]:
            yield f"{where} {c['name']}", pod, c


@pytest.mark.parametrize("deploy", [DeployConfig(), RICH], ids=["defaults", "every-option"])
def test_every_variant_and_what_the_operator_makes_validates(deploy):
    objects = []
    for variant, (c, d) in variants(_cfg(), deploy).items():
        objs = render_objects(c, d, suffix="" if variant == "base" else f"-{variant}")
        assert validate_objects(objs) == [], variant
        objects += objs
    kinds = {o["kind"] for o in objects}
    assert {"ConfigMap", "DaskJob", "NetworkPolicy", "PodDisruptionBudget"} <= kinds
    assert "Namespace" not in kinds  # applied once, owned by no overlay
    assert validate_objects(namespace_objects(deploy)) == []
    assert ("DaskWorkerGroup" in kinds) == bool(deploy.cpu_workers)
    assert KUBERNETES_VERSION.startswith("1.32")


def _job(objects: list[dict]) -> dict:
    (job,) = [o for o in objects if o["kind"] == "DaskJob"]
    return job


def test_the_validator_rejects_what_the_api_server_would():
    good = render_objects(_cfg(), RICH)
    assert validate_objects(good) == []
    bad = json.loads(json.dumps(good))
    job = _job(bad)
    worker = job["spec"]["cluster"]["spec"]["worker"]["spec"]["containers"][0]
    worker["resources"]["limits"]["nvidia.com/gpu"] = 1  # CRD quantities are strings
    job["spec"]["job"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFs"] = True
    (group,) = [o for o in bad if o["kind"] == "DaskWorkerGroup"]
    group["spec"]["worker"]["spec"]["containers"][0]["args"][2] = "$(DASK_SCHEDULER_ADRESS)"
    (cm,) = [o for o in bad if o["kind"] == "ConfigMap"]
    cm["data"]["replicas"] = 3
    errors = "\n".join(validate_objects(bad))
    assert "nvidia.com/gpu: 1 is not of type 'string'" in errors
    assert "'readOnlyRootFs' was unexpected" in errors
    assert "$(DASK_SCHEDULER_ADRESS)" in errors and "defines no DASK_SCHEDULER_ADRESS" in errors
    assert "data.replicas" in errors
    long = json.loads(json.dumps(good))
    _job(long)["metadata"]["name"] = "x" * 60
    assert "under 53 characters" in "\n".join(validate_objects(long))
    with pytest.raises(ConfigError, match=r"do not validate against Kubernetes 1\.32"):
        check_objects(bad)


@pytest.mark.parametrize("deploy", [DeployConfig(), RICH], ids=["defaults", "every-option"])
def test_every_container_is_non_root_read_only_and_bounded(deploy):
    objects = _all(_cfg(), deploy)
    seen = 0
    for where, pod, c in _containers(objects):
        seen += 1
        assert pod["automountServiceAccountToken"] is False, where
        ps = pod["securityContext"]
        assert ps["runAsNonRoot"] is True and ps["runAsUser"] == RUN_AS_UID, where
        assert ps["seccompProfile"] == {"type": "RuntimeDefault"}, where
        sc = c["securityContext"]
        assert sc["runAsNonRoot"] is True and sc["runAsUser"] == RUN_AS_UID, where
        assert sc["readOnlyRootFilesystem"] is True, where
        assert sc["allowPrivilegeEscalation"] is False and sc["privileged"] is False, where
        assert sc["capabilities"] == {"drop": ["ALL"]}, where
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, where
        # scratch space is an emptyDir: the read-only root filesystem is never written
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
        assert "emptyDir" in volumes[mounts["/tmp"]], where
        for m in c["volumeMounts"]:
            v = volumes[m["name"]]
            assert set(v) & {"emptyDir", "configMap", "persistentVolumeClaim", "secret"}, where
            if "emptyDir" not in v:
                assert m.get("readOnly") is True, where
        if "dask" in c["args"][:1] and "worker" in c["args"][:3]:
            assert "--local-directory=/scratch/dask" in c["args"], where
            assert "emptyDir" in volumes[mounts["/scratch"]], where
        # requests and limits everywhere, equal (QoS Guaranteed)
        res = c["resources"]
        assert res["requests"] == res["limits"], where
        assert {"cpu", "memory", "ephemeral-storage"} <= set(res["limits"]), where
        assert all(isinstance(v, str) for v in res["limits"].values()), where
        assert c["imagePullPolicy"] == "IfNotPresent" and ":" in c["image"], where
    assert seen >= 6  # job, worker, scheduler as rendered and as the operator makes them


def test_namespace_enforces_the_restricted_pod_security_standard():
    (ns,) = namespace_objects(RICH)
    assert ns["metadata"]["name"] == "sr"
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_credentials_come_only_from_the_secret(monkeypatch):
    key, secret, token = "AKIAEXAMPLEKEYID0001", "s3cr3t/Example+Key", "session-token-xyz"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("AWS_SESSION_TOKEN", token)
    objects = _all(_cfg(), RICH)
    text = json.dumps(objects) + "".join(render_layout(_cfg(), RICH).values())
    for value in (key, secret, token):
        assert value not in text
    for where, _, c in _containers(objects):
        names = {e["name"] for e in c.get("env", [])}
        assert not any(n.startswith("AWS_") for n in names), where  # only through envFrom
        for e in c.get("env", []):
            assert "secretKeyRef" not in e.get("valueFrom", {}) or "value" not in e, where
        args = " ".join(c["args"])
        assert "AWS_" not in args and "SECRET" not in args.upper(), where
        refs = [r["secretRef"]["name"] for r in c.get("envFrom", [])]
        if "scheduler" in where:
            assert refs == [], f"{where}: the scheduler never touches the object store"
        else:
            assert refs == [RICH.secret], where
    allowed = {"cluster-autoscaler.kubernetes.io/safe-to-evict"} | {
        f"prometheus.io/{k}" for k in ("scrape", "port", "path")
    }
    for o in objects:
        assert set(o["metadata"].get("annotations") or {}) <= allowed, o["kind"]


def test_gpu_workers_run_dask_cuda_with_one_gpu_and_matching_memory():
    from dask.utils import parse_bytes
    from kubernetes.utils.quantity import parse_quantity

    objects = render_objects(_cfg(), RICH)
    worker = _job(objects)["spec"]["cluster"]["spec"]["worker"]
    assert worker["replicas"] == RICH.gpu_workers
    pod = worker["spec"]
    (c,) = pod["containers"]
    assert c["args"][:4] == ["dask", "cuda", "worker", "$(DASK_SCHEDULER_ADDRESS)"]
    assert "--resources=GPU=1" in c["args"] and "--nthreads=6" in c["args"]
    assert "--preload=s2scale.deploy.gpucheck" in c["args"]  # fails at start without CUDA
    assert c["image"] == RICH.image
    limits = c["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == "1" and limits["cpu"] == "6"
    (mem,) = [a.split("=", 1)[1] for a in c["args"] if a.startswith("--memory-limit=")]
    assert parse_bytes(mem) == int(parse_quantity(limits["memory"])) == 40 * 2**30
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert pod["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    (group,) = [o for o in objects if o["kind"] == "DaskWorkerGroup"]
    assert group["spec"]["cluster"] == _job(objects)["metadata"]["name"]
    io = group["spec"]["worker"]["spec"]
    (ic,) = io["containers"]
    assert ic["args"][:3] == ["dask", "worker", "$(DASK_SCHEDULER_ADDRESS)"]
    assert not any("GPU" in a for a in ic["args"]) and "nvidia.com/gpu" not in str(ic)
    assert "nodeSelector" not in io and "tolerations" not in io
    assert ic["image"] == "registry.example.org:5000/s2scale:1.2.3-cpu"


def test_scheduler_keeps_task_fusion_off():
    sched = _job(render_objects(_cfg(), DeployConfig()))["spec"]["cluster"]["spec"]["scheduler"]
    (c,) = sched["spec"]["containers"]
    assert {"name": "DASK_OPTIMIZATION__FUSE__ACTIVE", "value": "False"} in c["env"]
    assert "nvidia.com/gpu" not in c["resources"]["limits"]
    assert sched["service"]["selector"]["dask.org/cluster-name"] == "s2scale"


def test_the_job_runs_upscale_on_the_operators_scheduler_with_bounded_retries():
    objects = render_objects(_cfg(), RICH)
    pod = _job(objects)["spec"]["job"]["spec"]
    assert pod["restartPolicy"] == "Never"
    (c,) = pod["containers"]
    args = c["args"]
    assert args[:3] == ["s2scale", "deploy", "retry"] and "--attempts=6" in args
    command = args[args.index("--") + 1 :]
    assert command[:2] == ["s2scale", "upscale"] and command[-1] == "--cluster=auto"
    assert "--config=/etc/s2scale/run.yaml" in command and "--out=$(S2SCALE_OUT)" in command
    # $(S2SCALE_OUT) is the ConfigMap's "out", the run config its "run.yaml", mounted read-only
    (env,) = [e for e in c["env"] if e["name"] == "S2SCALE_OUT"]
    ref = env["valueFrom"]["configMapKeyRef"]
    (cm,) = [o for o in objects if o["kind"] == "ConfigMap"]
    assert ref == {"name": cm["metadata"]["name"], "key": "out"}
    assert cm["data"]["out"] == RICH.store
    (vol,) = [v for v in pod["volumes"] if "configMap" in v]
    assert vol["configMap"]["name"] == cm["metadata"]["name"]
    # the operator sets DASK_SCHEDULER_ADDRESS in the runner pod (what --cluster auto reads)
    runner = next(o for o in operator_children(_job(objects)) if o["kind"] == "Pod")
    env_names = [e["name"] for e in runner["spec"]["containers"][0]["env"]]
    assert "DASK_SCHEDULER_ADDRESS" in env_names


def test_the_run_config_in_the_config_map_reads_back():
    cfg = _cfg(max_cloud_cover=55.0).replace("infer", model="srresnet")
    cfg = cfg.replace("cluster", kind="local", threads_per_worker=3)
    (cm,) = [o for o in render_objects(cfg, RICH) if o["kind"] == "ConfigMap"]
    back = RunConfig.from_dict(yaml.safe_load(cm["data"]["run.yaml"]))
    assert (cfg.infer.device, back.infer.device) == ("auto", "cuda")  # no silent CPU fallback
    back = back.replace("infer", device="auto")
    c = back.cluster
    assert (c.kind, c.k8s_name, c.k8s_namespace, c.k8s_image) == (
        "auto",
        RICH.name,
        RICH.namespace,
        RICH.image,
    )
    rest = dataclasses.replace(
        c,
        kind="local",
        k8s_name=cfg.cluster.k8s_name,
        k8s_namespace=None,
        k8s_image=cfg.cluster.k8s_image,
    )
    assert dataclasses.replace(back, cluster=rest) == cfg


def test_a_geojson_aoi_travels_in_the_config_map(tmp_path):
    from s2scale.grid import resolve_aoi

    geojson = tmp_path / "tyrol.geojson"
    geometry = {
        "type": "Polygon",
        "coordinates": [[[11.9, 47.4], [12.1, 47.4], [12.1, 47.6], [11.9, 47.4]]],
    }
    geojson.write_text(json.dumps({"type": "Feature", "geometry": geometry, "properties": {}}))
    (cm,) = [o for o in render_objects(_cfg(aoi=str(geojson)), RICH) if o["kind"] == "ConfigMap"]
    run = yaml.safe_load(cm["data"]["run.yaml"])
    assert run["catalog"]["aoi"] == "/etc/s2scale/aoi.geojson"
    shipped = tmp_path / "shipped.geojson"
    shipped.write_text(cm["data"]["aoi.geojson"])
    assert resolve_aoi(str(shipped)).equals(resolve_aoi(str(geojson)))


@pytest.mark.parametrize(
    ("cfg", "deploy", "message"),
    [
        (RunConfig().replace("catalog", stac="sample/catalog.json"), {}, "not a STAC API URL"),
        (_cfg(), {"store": "/data/mosaic.zarr"}, "not an object-store URL"),
        (_cfg(), {"store": "s3://KEY:SECRET@bucket/m.zarr"}, "put credentials in the Secret"),
        (_cfg(), {"store": "s3://bucket"}, "no path"),
        (_cfg(), {"image": "ghcr.io/s2scale/s2scale:latest"}, "no version tag"),
        (_cfg(), {"image": "ghcr.io/s2scale/s2scale"}, "no version tag"),
        (_cfg(), {"name": "S2Scale"}, "lower-case DNS label"),
        (_cfg(), {"name": "x" * 44}, "at most 43 characters"),
        (_cfg(), {"worker_memory": "lots"}, "is not a size"),
        (_cfg().replace("infer", model="/home/me/ckpt.pt"), {}, "--models-claim CLAIM"),
        (_cfg().replace("infer", model="srvgg"), {}, "no checkpoint for model 'srvgg'"),
        (_cfg(aoi="nowhere"), {}, "cannot understand AOI 'nowhere'"),
    ],
)
def test_inputs_the_pods_cannot_reach_are_refused(cfg, deploy, message):
    with pytest.raises(Exception, match=message) as info:
        render_objects(cfg, DeployConfig(**deploy))
    from s2scale.errors import S2ScaleError

    assert isinstance(info.value, S2ScaleError)


def test_a_checkpoint_on_the_models_volume_is_accepted():
    cfg = _cfg().replace("infer", model="/models/tyrol-ft.pt")
    job = _job(render_objects(cfg, RICH))
    mounts = job["spec"]["job"]["spec"]["containers"][0]["volumeMounts"]
    assert {"name": "models", "mountPath": "/models", "readOnly": True} in mounts
    worker = job["spec"]["cluster"]["spec"]["worker"]["spec"]
    (claim,) = [v for v in worker["volumes"] if v["name"] == "models"]
    assert claim["persistentVolumeClaim"] == {"claimName": "s2scale-models", "readOnly": True}


def _render_cli(out: Path, *extra: str):
    return CliRunner().invoke(main, ["deploy", "render", "--out", str(out), *extra])


def test_render_cli_writes_kustomizations_and_what_they_list(tmp_path):
    out = tmp_path / "k8s"
    res = _render_cli(
        out,
        "--stac",
        STAC,
        "--aoi",
        "11.9,47.4,12.0,47.5",
        "--workers",
        "3",
        "--image",
        "reg.example/s2:2.0-cuda",
        "--cpu-workers",
        "1",
    )
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    assert report["validated"].startswith("Kubernetes 1.32")
    kustomizations = sorted(out.rglob("kustomization.yaml"))
    assert [k.parent.relative_to(out).as_posix() for k in kustomizations] == [
        "base",
        "namespace",
        "overlays/austria",
        "overlays/small-aoi",
    ]
    listed = set()
    for k in kustomizations:
        data = yaml.safe_load(k.read_text())
        for rel in (
            data.get("resources", [])
            + [p["path"] for p in data.get("patches", [])]
            + data.get("configurations", [])
        ):
            assert (k.parent / rel).exists(), (k, rel)
            listed.add((k.parent / rel).resolve())
        listed.add(k.resolve())
    written = {p.resolve() for p in out.rglob("*.yaml")}
    assert written == listed - {(out / "base").resolve()}
    base = objects_from_yaml((out / "base" / "daskjob.yaml").read_text())
    (job,) = base
    assert job["spec"]["cluster"]["spec"]["worker"]["replicas"] == 3
    images = {c["image"] for _, _, c in _containers(base)}
    assert images == {"reg.example/s2:2.0-cuda", "reg.example/s2:2.0-cpu"}
    run = yaml.safe_load(
        objects_from_yaml((out / "base/run-config.yaml").read_text())[0]["data"]["run.yaml"]
    )
    assert run["catalog"]["aoi"] == "11.9,47.4,12.0,47.5"


def test_render_cli_bad_input_exits_2_with_a_message(tmp_path):
    res = _render_cli(tmp_path / "k8s", "--stac", STAC, "--store", "/local/out.zarr")
    assert res.exit_code == 2 and "not an object-store URL" in res.output
    assert "Traceback" not in res.output and not (tmp_path / "k8s").exists()
    res = _render_cli(tmp_path / "k8s", "--stac", STAC, "--gpu-toleration", "gpu:Sometimes")
    assert res.exit_code == 2 and "NoSchedule" in res.output


def test_render_takes_the_same_run_options_as_upscale(monkeypatch, tmp_path):
    """Every option of `s2scale upscale` that shapes the run exists on `deploy render` and
    builds the same run configuration."""
    import s2scale.pipeline
    from s2scale.cli import upscale
    from s2scale.deploy.cli import render

    upscale_only = {"out", "overwrite", "dry_run", "cluster", "from_cube"}
    wanted = {p.name for p in upscale.params} - upscale_only
    assert wanted <= {p.name for p in render.params}, wanted - {p.name for p in render.params}

    captured = {}
    monkeypatch.setattr(
        s2scale.pipeline,
        "run_upscale",
        lambda cfg, out, **kw: captured.setdefault("cfg", cfg) and {},
    )
    config = tmp_path / "run.yaml"
    config.write_text("cube: {chunk_px: 512}\nmosaic: {feather_px: 32}\n")
    opts = [
        "--config",
        str(config),
        "--stac",
        STAC,
        "--aoi",
        "11.9,47.4,12.1,47.6",
        "--datetime",
        "2024-07-01/2024-07-31",
        "--max-cloud",
        "30",
        "--model",
        "srresnet",
        "--region-px",
        "1024",
        "--units-in-flight",
        "3",
        "--halo-px",
        "12",
        "--crs",
        "EPSG:32633",
        "--device",
        "cuda",
        "--skip-errors",
        "--collection",
        "sentinel-2-l2a",
    ]
    res = CliRunner().invoke(main, ["upscale", *opts, "--out", "unused.zarr"])
    assert res.exit_code == 0, res.output
    res = _render_cli(tmp_path / "k8s", *opts, "--no-validate")
    assert res.exit_code == 0, res.output
    cm = objects_from_yaml((tmp_path / "k8s/base/run-config.yaml").read_text())[0]
    rendered = RunConfig.from_dict(yaml.safe_load(cm["data"]["run.yaml"]))
    expected = captured["cfg"].replace(
        "cluster",
        kind="auto",
        k8s_name="s2scale",
        k8s_namespace="s2scale",
        k8s_image=DeployConfig().image,
    )
    assert rendered == expected


def test_overlays_render_with_kustomize_as_their_direct_rendering(kubectl, tmp_path):
    cfg = _cfg()
    write_layout(render_layout(cfg, RICH), tmp_path)
    for variant, (c, d) in variants(cfg, RICH).items():
        folder = tmp_path / ("base" if variant == "base" else f"overlays/{variant}")
        out = subprocess.run(
            [kubectl, "kustomize", str(folder)], capture_output=True, text=True, timeout=120
        )
        assert out.returncode == 0, out.stderr
        got = objects_from_yaml(out.stdout)
        want = render_objects(c, d, suffix="" if variant == "base" else f"-{variant}")
        assert sorted(map(canonical, got)) == sorted(map(canonical, want)), variant
        assert validate_objects(got) == [], variant
        job = _job(got)
        name = job["metadata"]["name"]
        assert (
            job["spec"]["cluster"]["spec"]["scheduler"]["service"]["selector"][
                "dask.org/cluster-name"
            ]
            == name
        )
        (group,) = [o for o in got if o["kind"] == "DaskWorkerGroup"]
        assert group["spec"]["cluster"] == name
    (small_cm,) = [
        o
        for o in objects_from_yaml(
            subprocess.run(
                [kubectl, "kustomize", str(tmp_path / "overlays/small-aoi")],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        if o["kind"] == "ConfigMap"
    ]
    small = yaml.safe_load(small_cm["data"]["run.yaml"])
    assert small["catalog"]["aoi"] == RICH.small_aoi


def test_overlays_write_their_own_stores_and_size():
    found = variants(_cfg(aoi="11.9,47.4,12.1,47.6"), RICH)
    assert found["base"][1].store == "s3://bucket/runs/mosaic.zarr"
    assert found["small-aoi"][1].store == "s3://bucket/runs/small-aoi/mosaic.zarr"
    assert found["austria"][1].store == "s3://bucket/runs/austria/mosaic.zarr"
    assert found["austria"][0].catalog.aoi == "austria"
    assert found["small-aoi"][1].gpu_workers == 1 and found["small-aoi"][1].cpu_workers == 1
    assert found["austria"][1].gpu_workers == RICH.gpu_workers


def test_checked_in_manifests_are_rendered_from_the_documented_command(tmp_path, monkeypatch):
    assert CHECKED_IN in (REPO / "deploy" / "README.md").read_text().replace("\\\n", "")
    args = shlex.split(CHECKED_IN)[1:]
    out = tmp_path / "kubernetes"
    args[args.index("--out") + 1] = str(out)
    monkeypatch.chdir(REPO)
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    fresh = {p.relative_to(out): p.read_text() for p in out.rglob("*.yaml")}
    shipped_root = REPO / "deploy" / "kubernetes"
    shipped = {p.relative_to(shipped_root): p.read_text() for p in shipped_root.rglob("*.yaml")}
    assert fresh.keys() == shipped.keys()
    stale = [str(k) for k in fresh if fresh[k] != shipped[k]]
    assert not stale, f"deploy/kubernetes is out of date ({stale}); rerun: {CHECKED_IN}"


def test_a_new_render_removes_its_own_stale_files_only(tmp_path):
    write_layout(render_layout(_cfg(), RICH), tmp_path)
    assert (tmp_path / "base" / "io-workers.yaml").exists()
    mine = tmp_path / "base" / "extra-notes.yaml"
    mine.write_text("# my own file\n")
    write_layout(render_layout(_cfg(), dataclasses.replace(RICH, cpu_workers=0)), tmp_path)
    assert not (tmp_path / "base" / "io-workers.yaml").exists()
    assert not (tmp_path / "overlays" / "small-aoi" / "patch-io-workers.yaml").exists()
    assert mine.exists()
    assert all(p.read_text().startswith(HEADER) for p in tmp_path.rglob("*.yaml") if p != mine)
