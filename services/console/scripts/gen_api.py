"""Dump what the console's generated types come from, without starting a server:

- `openapi.json`: the gateway's schema (`loom_gateway.app.build(...).http.openapi()`), which
  `openapi-typescript` turns into `src/app/openapi.d.ts`;
- `src/app/rbac.gen.json`: the gateway's permission matrix (`loom_gateway.domain.rbac.MATRIX`), so
  the console hides exactly the controls the API would refuse.

Run through `npm run gen:api` (which also runs openapi-typescript); tests/console/test_console_types.py
fails when either generated file is stale.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]


def openapi_schema() -> dict:
    # The schema needs no database or broker, but settings derive paths from LOOM_HOME.
    os.environ.setdefault("LOOM_HOME", tempfile.mkdtemp(prefix="loom-openapi-"))
    from loom_gateway.app import build
    from loom_gateway.settings import GatewaySettings

    return build(GatewaySettings()).http.openapi()


def rbac_matrix() -> dict:
    from loom_gateway.domain.rbac import MATRIX, MEMBER_ROLES, Perm

    return {"roles": [r.value for r in MEMBER_ROLES],
            "permissions": {perm.value: sorted(r.value for r in MATRIX[perm] if r in MEMBER_ROLES) for perm in Perm}}


def main(out: Path = HERE) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "openapi.json").write_text(json.dumps(openapi_schema(), indent=1, sort_keys=True) + "\n")
    (out / "src" / "app").mkdir(parents=True, exist_ok=True)
    (out / "src" / "app" / "rbac.gen.json").write_text(json.dumps(rbac_matrix(), indent=2) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
