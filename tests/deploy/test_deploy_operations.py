"""The manifests as an operator runs them: no overlay owns the namespace, closed network paths,
TLS, deadlines, eviction guards, the runner's Secret check, the pinned torch of the images."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import yaml
from click.testing import CliRunner
from test_deploy_render import RICH, _cfg, _job

from s2scale.cli import main
from s2scale.deploy.config import DeployConfig, parse_affinity
from s2scale.deploy.layout import objects_from_yaml, render_layout, write_layout
from s2scale.deploy.render import render_objects
from s2scale.deploy.runconfig import variants
from s2scale.deploy.sizing import job_deadline_s
from s2scale.deploy.validate import operator_children

REPO = Path(__file__).resolve().parents[2]


def _variant(name: str, deploy: DeployConfig = RICH) -> list[dict]:
    c, d = variants(_cfg(), deploy)[name]
    return render_objects(c, d, suffix="" if name == "base" else f"-{name}")


def _pods_by_component(objects: list[dict]) -> dict[str, dict]:
    """``{dask.org/component: pod metadata+spec}`` of the pods the operator makes."""
    out = {}
    stack = list(objects)
    while stack:
        o = stack.pop()
        stack += operator_children(o)
        if o["kind"] == "Pod":
            out[o["metadata"]["labels"]["dask.org/component"]] = o
        elif o["kind"] == "Deployment":
            t = o["spec"]["template"]
            out[t["metadata"]["labels"]["dask.org/component"]] = t
    return out


def _selects(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector["matchLabels"].items())


def test_no_overlay_contains_the_namespace_a_secret_or_a_claim(kubectl, tmp_path):
    """`kubectl delete -k overlays/X` deletes exactly what `kubectl kustomize` lists."""
    write_layout(render_layout(_cfg(), RICH), tmp_path)
    for overlay in ("small-aoi", "austria"):
        out = subprocess.run(
            [kubectl, "kustomize", str(tmp_path / "overlays" / overlay)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
        kinds = {o["kind"] for o in objects_from_yaml(out.stdout)}
        assert not kinds & {"Namespace", "Secret", "PersistentVolumeClaim"}, overlay
    ns = objects_from_yaml((tmp_path / "namespace" / "namespace.yaml").read_text())
    assert [o["kind"] for o in ns] == ["Namespace"]


def test_network_policies_admit_only_the_clusters_own_pods():
    objects = _variant("austria")
    pods = _pods_by_component(objects)
    policies = {o["metadata"]["name"]: o["spec"] for o in objects if o["kind"] == "NetworkPolicy"}
    assert len(policies) == 3
    by_target = {}
    for spec in policies.values():
        (target,) = [
            c for c, p in pods.items() if _selects(spec["podSelector"], p["metadata"]["labels"])
        ]
        by_target[target] = spec
    assert set(by_target) == {"scheduler", "worker", "job-runner"}
    assert by_target["job-runner"]["ingress"] == []

    def sources(rule):
        found = set()
        for peer in rule["from"]:
            if peer.get("podSelector"):
                found |= {
                    c
                    for c, p in pods.items()
                    if _selects(peer["podSelector"], p["metadata"]["labels"])
                }
            elif "namespaceSelector" in peer:
                found.add(
                    "ns:" + peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
                )
            else:
                found.add("namespace")
        return found

    comm, dash = by_target["scheduler"]["ingress"]
    assert comm["ports"] == [{"protocol": "TCP", "port": 8786}]
    assert sources(comm) == {"job-runner", "worker"}
    assert dash["ports"] == [{"protocol": "TCP", "port": 8787}]
    assert sources(dash) == {"namespace", "ns:dask-operator"}
    peers, wdash = by_target["worker"]["ingress"]
    assert "ports" not in peers and sources(peers) == {"scheduler", "worker"}
    assert sources(wdash) == {"namespace", "ns:dask-operator"}


def test_tls_is_on_in_austria_for_every_party_and_off_in_the_smoke_test():
    for name, on in (("austria", True), ("small-aoi", False), ("base", False)):
        pods = _pods_by_component(_variant(name))
        for component, pod in pods.items():
            (c,) = pod["spec"]["containers"]
            env = {e["name"]: e for e in c["env"]}
            assert ("DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION" in env) == on, (name, component)
            mounts = {m["mountPath"] for m in c["volumeMounts"]}
            assert ("/etc/s2scale/tls" in mounts) == on, (name, component)
            if component == "scheduler":
                assert ("--protocol=tls" in c["args"]) == on
            else:
                # one address only: ours (tls://) or, without TLS, the operator's tcp://
                (addr,) = [e for e in c["env"] if e["name"] == "DASK_SCHEDULER_ADDRESS"]
                assert addr["value"].startswith("tls://" if on else "tcp://"), (name, component)
        if on:
            (c,) = pods["job-runner"]["spec"]["containers"]
            assert "DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT" in {e["name"] for e in c["env"]}


def test_scheduler_and_runner_are_guarded_against_eviction_and_scraped():
    objects = _variant("austria")
    pods = _pods_by_component(objects)
    budgets = [o["spec"] for o in objects if o["kind"] == "PodDisruptionBudget"]
    guarded = {
        c
        for b in budgets
        for c, p in pods.items()
        if _selects(b["selector"], p["metadata"]["labels"])
    }
    assert guarded == {"scheduler", "job-runner"} and all(b["minAvailable"] == 1 for b in budgets)
    for component in ("scheduler", "job-runner"):
        ann = pods[component]["metadata"]["annotations"]
        assert ann["cluster-autoscaler.kubernetes.io/safe-to-evict"] == "false"
    assert pods["scheduler"]["metadata"]["annotations"]["prometheus.io/port"] == "8787"
    assert pods["worker"]["metadata"]["annotations"]["prometheus.io/scrape"] == "true"


def test_runner_deadline_secret_check_and_cluster_idle_timeout():
    job = _job(_variant("austria"))
    pod = job["spec"]["job"]["spec"]
    assert pod["activeDeadlineSeconds"] == RICH.deadline_s
    assert job["spec"]["cluster"]["spec"]["idleTimeout"] == RICH.idle_timeout_s
    (c,) = pod["containers"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["S2SCALE_SECRET_KEYS"] == "AWS_ACCESS_KEY_ID,AWS_SECRET_ACCESS_KEY"
    assert env["S2SCALE_SECRET_NAME"] == RICH.secret
    assert c["envFrom"] == [{"secretRef": {"name": RICH.secret, "optional": True}}]
    worker = job["spec"]["cluster"]["spec"]["worker"]["spec"]["containers"][0]
    assert worker["envFrom"] == [{"secretRef": {"name": RICH.secret}}]
    small = _job(_variant("small-aoi"))["spec"]["job"]["spec"]["activeDeadlineSeconds"]
    assert small == 2 * 3600


def test_the_committed_deadline_comes_from_the_committed_plan():
    plan = json.loads((REPO / "deploy/austria-plan.json").read_text())
    patch = yaml.safe_load(
        (REPO / "deploy/kubernetes/overlays/austria/patch-daskjob.yaml").read_text()
    )
    base = objects_from_yaml((REPO / "deploy/kubernetes/base/daskjob.yaml").read_text())[0]
    deadline = base["spec"]["job"]["spec"]["activeDeadlineSeconds"]
    assert not any("activeDeadlineSeconds" in op["path"] for op in patch)
    assert deadline == job_deadline_s(plan, gpus=8)
    # three times the plan's wall clock on 8 GPUs plus 30 min, whole minutes
    expected = 3 * plan["gpu_hours"] / 8 * 3600 + 1800
    assert expected <= deadline < expected + 60


def test_render_cli_takes_the_deadline_from_a_plan(tmp_path):
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"gpu_hours": 10.0, "gpus": 8}))
    stac = "https://earth-search.aws.element84.com/v1"
    args = ["deploy", "render", "--out", str(tmp_path / "k"), "--stac", stac, "--no-validate"]
    args += ["--workers", "4"]
    res = CliRunner().invoke(main, [*args, "--plan", str(plan), "--deadline-margin", "2"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["deadline_s"] == 10 * 3600 // 4 * 2 + 1800
    res = CliRunner().invoke(main, [*args, "--deadline-hours", "5"])
    assert json.loads(res.output)["deadline_s"] == 5 * 3600


def test_scheduling_options_reach_the_pods():
    deploy = DeployConfig(
        priority_class="batch-high",
        image_pull_secrets=("regcred",),
        gpu_affinity=(parse_affinity("nvidia.com/gpu.product=NVIDIA-H100-80GB-HBM3,NVIDIA-H200"),),
    )
    pods = _pods_by_component(_variant("base", deploy))
    for pod in pods.values():
        assert pod["spec"]["priorityClassName"] == "batch-high"
        assert pod["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
    terms = pods["worker"]["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]["nodeSelectorTerms"]
    assert terms[0]["matchExpressions"][0]["values"] == ["NVIDIA-H100-80GB-HBM3", "NVIDIA-H200"]
    assert "affinity" not in pods["scheduler"]["spec"]


def test_scheduling_options_come_from_the_run_config_and_the_command_line_wins(tmp_path):
    import yaml

    config = tmp_path / "run.yaml"
    config.write_text(
        "catalog: {stac: 'https://earth-search.aws.element84.com/v1', aoi: austria}\n"
        "cluster:\n"
        "  k8s_priority_class: batch-low\n"
        "  k8s_image_pull_secrets: [regcred]\n"
        "  k8s_gpu_node_selector: ['pool=gpu']\n"
        "  k8s_gpu_affinity: ['nvidia.com/gpu.product=NVIDIA-H200']\n"
    )
    args = ["deploy", "render", "--config", str(config), "--no-validate", "--workers", "2"]

    def pods(out, *extra):
        res = CliRunner().invoke(main, [*args, "--out", str(out), *extra])
        assert res.exit_code == 0, res.output
        base = yaml.safe_load((out / "base/daskjob.yaml").read_text())
        job = base["spec"]["job"]["spec"]
        cluster = base["spec"]["cluster"]["spec"]
        return job, cluster["worker"]["spec"]

    job, worker = pods(tmp_path / "a")
    assert job["priorityClassName"] == "batch-low" == worker["priorityClassName"]
    assert job["imagePullSecrets"] == [{"name": "regcred"}]
    assert worker["nodeSelector"]["pool"] == "gpu"
    terms = worker["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms["nodeSelectorTerms"][0]["matchExpressions"][0]["values"] == ["NVIDIA-H200"]
    job, worker = pods(tmp_path / "b", "--priority-class", "batch-high")
    assert job["priorityClassName"] == "batch-high" == worker["priorityClassName"]


def test_a_cpu_device_is_refused_for_kubernetes():
    import pytest

    from s2scale.errors import ConfigError

    with pytest.raises(ConfigError, match="hold their GPUs"):
        render_objects(_cfg().replace("infer", device="cpu"), DeployConfig())


def test_the_cuda_image_pins_a_torch_built_for_its_cuda_base():
    docker = (REPO / "deploy/Dockerfile").read_text()
    base = re.search(r"ARG CUDA_BASE=nvidia/cuda:(\d+)\.(\d+)\.\d+-", docker)
    cu = f"cu{base[1]}{base[2]}"
    for target, flavour in (("cuda", cu), ("cpu", "cpu")):
        pins = dict(
            line.split("==")
            for line in (REPO / f"deploy/constraints-{target}.txt").read_text().splitlines()
            if "==" in line and not line.startswith("#")
        )
        assert pins["torch"].endswith(f"+{flavour}") and pins["torchvision"].endswith(f"+{flavour}")
        assert "prometheus-client" in pins
        stage = docker.split(f" AS {target}\n")[1].split("\nFROM ")[0]
        assert f"ARG TORCH_VERSION={pins['torch']}" in stage
        assert f"whl/{flavour}" in stage and f"constraints-{target}.txt" in stage
        assert 'LABEL io.s2scale.torch="${TORCH_VERSION}"' in stage
    setup = (REPO / "deploy/image-setup.sh").read_text()
    assert '-c "$constraints"' in setup and "torch.__version__" in setup


def test_runbook_recovers_by_deleting_only_the_daskjob():
    readme = (REPO / "deploy/README.md").read_text()
    assert "kubectl -n s2scale delete daskjob s2scale-austria" in readme
    assert "kubectl delete -k ...; kubectl apply -k" not in readme
    assert "kubectl apply -k deploy/kubernetes/namespace" in readme
    assert "secret generic s2scale-tls" in readme
