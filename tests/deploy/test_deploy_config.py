"""DeployConfig and its small parsers: sizes, quantities, tolerations, node selectors."""

from __future__ import annotations

import pytest
from dask.utils import parse_bytes as dask_bytes
from kubernetes.utils.quantity import parse_quantity

from s2scale.deploy.config import (
    DeployConfig,
    parse_node_selector,
    parse_toleration,
    quantity,
)
from s2scale.errors import ConfigError


@pytest.mark.parametrize("n", [1, 1023, 2**20, 3 * 2**30 + 2**20, 48 * 2**30, 5 * 10**9])
def test_both_spellings_of_a_size_are_the_same_bytes(n):
    k8s, dask = quantity(n)
    assert int(parse_quantity(k8s)) == dask_bytes(dask) == n


def test_tolerations_and_selectors_parse_or_name_the_form():
    assert parse_toleration("nvidia.com/gpu=present:NoExecute").to_json() == {
        "key": "nvidia.com/gpu",
        "operator": "Equal",
        "value": "present",
        "effect": "NoExecute",
    }
    assert parse_toleration("gpu").to_json() == {"key": "gpu", "operator": "Exists"}
    for bad in ("", "a b", "gpu:Never", "gpu=bad value"):
        with pytest.raises(ConfigError, match=r"KEY\[=VALUE\]\[:EFFECT\]"):
            parse_toleration(bad)
    for bad in ("gpu", "=x", "a b=c"):
        with pytest.raises(ConfigError, match="KEY=VALUE"):
            parse_node_selector(bad)


def test_cpu_image_follows_the_cuda_tag():
    assert DeployConfig().resolved_cpu_image.endswith(":0.1.0-cpu")
    assert DeployConfig(image="r.io:5000/x:2-cuda").resolved_cpu_image == "r.io:5000/x:2-cpu"
    assert DeployConfig(image="r.io/x:2").resolved_cpu_image == "r.io/x:2"
    assert DeployConfig(image="r.io/x@sha256:" + "a" * 64).resolved_cpu_image.startswith("r.io/x@")
    assert DeployConfig(image="r/x:2", cpu_image="r/y:3").resolved_cpu_image == "r/y:3"
    with pytest.raises(ConfigError, match="cpu_image"):
        DeployConfig(image="r/x:2", cpu_image="r/y")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"gpu_workers": 0}, "gpu_workers=0 must be at least 1"),
        ({"cpu_workers": -1}, "cpu_workers=-1"),
        ({"backoff_limit": -1}, "backoff_limit=-1"),
        ({"retry_delay_s": -1.0}, "retry_delay_s"),
        ({"namespace": "Bad_NS"}, "namespace"),
        ({"secret": "UPPER"}, "secret"),
        ({"models_claim": "no space"}, "models_claim"),
        ({"worker_scratch": "0B"}, "positive size"),
        ({"store": "s3://b/m.zarr?versionId=1"}, "credentials or options"),
        ({"store": "http://host/m.zarr"}, "object-store URL"),
    ],
)
def test_bad_values_are_named_with_the_fix(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        DeployConfig(**kwargs)
