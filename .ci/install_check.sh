#!/usr/bin/env bash
# Install one built artifact into a new virtualenv and use it there, outside the checkout.
#   .ci/install_check.sh PYTHON ARTIFACT [DJANGO_SERIES]
# With a Django series (e.g. 6.1), pip must resolve "Django==6.1.*" together with the
# package's own pins, as a project on that Django would ask it to.
set -euo pipefail
cd "$(dirname "$0")/.."
python=$1 artifact=$2 series=${3:-}
venv=build/dist-check/$(basename "$python")-$(basename "$artifact")
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$artifact" ${series:+"Django==$series.*"}
cd build && "../$venv/bin/python" ../.ci/smoke_installed.py "$artifact"
