#!/bin/sh
# Install requirements.txt into a virtualenv that also sees the base image's packages.
# Usage: install-requirements.sh VENV REQUIREMENTS WHEELS_DIR
#
# requirements.txt stays the one pinned list. The tensorflow/tensorflow base image already has
# TensorFlow installed system-wide (as "tensorflow"); when its version is the pinned one, the
# tensorflow-cpu line is left out so the image does not carry a second 1 GB copy. Any other base
# (a plain Debian one in `make image-test`) gets tensorflow-cpu from the list like every package.
# With wheels in WHEELS_DIR, nothing is downloaded (offline builds); otherwise pip uses its index.
set -eu
venv=$1
requirements=$2
wheels=$3

tf_pin=$(sed -n 's/^tensorflow-cpu==\([^ ;#]*\).*/\1/p' "$requirements")
tf_base=$(python3 -c '
from importlib.metadata import PackageNotFoundError, version
for name in ("tensorflow", "tensorflow-cpu"):
    try:
        print(version(name))
        break
    except PackageNotFoundError:
        pass
')

# The venv has no pip of its own: the base's pip installs into it (--python), so the image
# carries one pip, and bases without ensurepip (python3-venv) work too.
python3 -m venv --without-pip --system-site-packages "$venv"

filtered=$(mktemp)
if [ -n "$tf_pin" ] && [ "$tf_base" = "$tf_pin" ]; then
    echo "install-requirements: TensorFlow $tf_base comes with the base image; tensorflow-cpu is not installed again"
    grep -v '^tensorflow-cpu==' "$requirements" >"$filtered"
else
    cp "$requirements" "$filtered"
fi

if ls "$wheels"/*.whl >/dev/null 2>&1; then
    set -- --no-index --find-links "$wheels"
else
    set --
fi
python3 -m pip --python "$venv/bin/python" install --no-cache-dir --disable-pip-version-check "$@" -r "$filtered"
rm -f "$filtered"
