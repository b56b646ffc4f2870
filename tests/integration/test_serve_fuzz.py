"""Fuzz the running API from its own OpenAPI spec: no request may cause a server error."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.serve_process import WRITE_KEY, Serve


def test_schemathesis_finds_no_server_errors(tmp_path: Path) -> None:
    exe = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert exe is not None, "schemathesis is a dev dependency: run `make install`"
    with Serve(tmp_path / "home") as server:
        # The spec needs the admin token; the fuzzed calls carry the collector's write key.
        spec = tmp_path / "openapi.json"
        spec.write_bytes(server.get("/openapi.json").body)
        proc = subprocess.run(
            [
                exe,
                "run",
                str(spec),
                "--url",
                server.url,
                "--checks",
                "not_a_server_error",
                "--header",
                f"Authorization: Bearer {WRITE_KEY}",
                # Operations take the admin token, not a write key (test_serve_http checks them).
                "--exclude-path",
                "/readyz",
                "--exclude-path",
                "/metrics",
                "--max-examples",
                "60",
                "--no-color",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            cwd=tmp_path,  # schemathesis keeps a cache in its working directory
        )
        log = server.output()
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, report[-4000:] + log[-2000:]
    assert "passed" in report
    assert "Authentication failed" not in report  # the key worked: bodies were really tried
