"""The README shows real usage that runs: every Python block is executed or exercised here."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from chaos.servers import RedisServer

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
PROGRAMS = [block for block in BLOCKS if "asyncio.run(main())" in block]


def test_the_readme_has_programs_and_fragments() -> None:
    assert len(PROGRAMS) >= 4
    assert any("def build_app" in block for block in BLOCKS)


@pytest.mark.real_server
@pytest.mark.parametrize("program", PROGRAMS, ids=lambda p: p.split("def main")[0][-60:].strip())
def test_readme_program_runs(program: str, redis_server: RedisServer, tmp_path: Path) -> None:
    script = tmp_path / "snippet.py"
    script.write_text(program)
    env = {**os.environ, "REDIS_URL": redis_server.url}
    env.pop("TOXIPROXY_URL", None)
    done = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.real_server
async def test_readme_service_limits_and_shows_the_source(redis_server: RedisServer) -> None:
    (block,) = [block for block in BLOCKS if "def build_app" in block]
    namespace: dict[str, object] = {}
    exec(compile(block, "README.md", "exec"), namespace)
    app = namespace["build_app"](redis_server.url)  # type: ignore[operator]
    async with TestClient(TestServer(app)) as client:
        first = await client.get("/", headers={"X-Api-Key": "readme-user"})
        assert first.status == 200
        assert await first.text() == "decided by primary\n"
        statuses = [
            (await client.get("/", headers={"X-Api-Key": "readme-user"})).status for _ in range(40)
        ]
        assert 429 in statuses


def test_every_readme_block_compiles() -> None:
    for block in BLOCKS:
        compile(block, "README.md", "exec")
