#!/bin/sh
# Build step of both images of deploy/Dockerfile (runs as root, in /src with the sources):
# Python, tini, the user s2scale (uid/gid 10001), s2scale[gpu,deploy] in /opt/s2scale, with torch
# pinned by a constraints file to the build for the image's CUDA (or the CPU build).
#   sh deploy/image-setup.sh TORCH_INDEX_URL CONSTRAINTS TORCH_VERSION
set -eu

torch_index="$1"
constraints="$2"
torch_version="$3"
uid=10001

export DEBIAN_FRONTEND=noninteractive PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
apt-get update
apt-get install -y --no-install-recommends python3 python3-venv tini ca-certificates
rm -rf /var/lib/apt/lists/*

groupadd --gid "$uid" s2scale
useradd --uid "$uid" --gid "$uid" --no-create-home --home-dir /tmp --shell /usr/sbin/nologin s2scale

python3 -m venv /opt/s2scale
/opt/s2scale/bin/pip install --index-url "$torch_index" -c "$constraints" torch torchvision
/opt/s2scale/bin/pip install -c "$constraints" "/src[gpu,deploy]" prometheus-client

# The torch of the constraints file, the one the image label names, and nothing else.
/opt/s2scale/bin/python -c 'import sys, torch; v = torch.__version__; sys.exit(0 if v == sys.argv[1] else f"torch {v} installed, {sys.argv[1]} pinned")' "$torch_version"

# The shipped weights are in the package; fail the build rather than a job if they are not.
/opt/s2scale/bin/python - <<'EOF'
from s2scale.infer import weights_path

for name in ("srresnet", "realesrgan"):
    assert weights_path(name).is_file(), f"shipped weights {name!r} missing from the image"
EOF
/opt/s2scale/bin/s2scale --version
/opt/s2scale/bin/dask --version

# TORCH_HOME: empty, owned by root; a read-only volume with the backbones is mounted here.
mkdir -p /models/torch/hub/checkpoints
rm -rf /src /root/.cache
