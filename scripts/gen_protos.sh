#!/usr/bin/env bash
# Generate Python stubs for every proto into libs/protos/src (one documented place).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=libs/protos/src
rm -rf "$OUT/loom"
mkdir -p "$OUT"
"$PY" -m grpc_tools.protoc -Iprotos --python_out="$OUT" --pyi_out="$OUT" --grpc_python_out="$OUT" \
  $(find protos -name '*.proto' | sort)
# Make every generated folder a regular package, so editable installs and type checkers see it.
find "$OUT/loom" -type d -exec touch {}/__init__.py \;
touch "$OUT/loom/py.typed"
echo "protos generated into $OUT/loom"
