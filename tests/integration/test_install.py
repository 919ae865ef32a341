"""A non-editable install, as the container image makes it, runs with its default files.

The image's build context is pyproject.toml, README.md, monitor/ and streams/ (Dockerfile);
this copies exactly those to a temporary folder, `pip install`s them (not editable) into a
fresh virtual environment and runs `liqmon simulate` there with the default instruments,
from a working directory outside the repository, so nothing can be found by accident.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

from streams import TableConsumer
from streams.settings import KafkaSettings, TopicSettings

pytestmark = pytest.mark.kafka

BUILD_CONTEXT = ("pyproject.toml", "README.md", "monitor", "streams")


@pytest.fixture(scope="module")
def installed_liqmon(project_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The `liqmon` script of a fresh venv holding a wheel built from the image's context."""
    root = tmp_path_factory.mktemp("install")
    context = root / "context"
    context.mkdir()
    for name in BUILD_CONTEXT:
        source = project_root / name
        if source.is_dir():
            shutil.copytree(source, context / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, context / name)
    venv = root / "venv"
    # No pip inside: the test venv's pip installs into it (--python), which saves a minute.
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120
    )
    # liqmon itself is installed for real; its dependencies are borrowed from the test venv
    # (a path line, not a site dir, so the editable install there is not picked up).
    purelib = next(venv.glob("lib/python*/site-packages"))
    (purelib / "borrowed-dependencies.pth").write_text(site.getsitepackages()[0] + "\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(venv / "bin" / "python"),
            "install",
            "--quiet",
            "--no-deps",
            str(context),
        ],
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert not (purelib / "__editable__.liqmon-0.1.0.pth").exists()
    return venv / "bin" / "liqmon"


def test_installed_package_imports_from_site_packages_not_the_checkout(
    installed_liqmon: Path, tmp_path: Path
) -> None:
    python = installed_liqmon.parent / "python"
    result = subprocess.run(
        [str(python), "-c", "import monitor; print(monitor.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        timeout=60,
        check=True,
    )
    assert "site-packages" in result.stdout.decode()


async def test_simulate_with_default_instruments_runs_from_a_wheel_install(
    installed_liqmon: Path, kafka: KafkaSettings, topics: TopicSettings, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "LIQMON_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "LIQMON_TOPICS__PRICES": topics.prices,
        "LIQMON_TOPICS__FILLS": topics.fills,
    }
    process = await asyncio.create_subprocess_exec(
        str(installed_liqmon),
        "simulate",
        "--ticks",
        "200",
        "--quiet",
        cwd=tmp_path,
        env=env,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, stderr.decode()[-2000:]
    async with TableConsumer(kafka, topic=topics.prices) as prices:
        ticks = sum(prices.start_end_offsets.values())
    async with TableConsumer(kafka, topic=topics.fills) as fills:
        ledger = sum(fills.start_end_offsets.values())
    assert ticks == 200
    # At least a deposit for each of the default 1000 accounts.
    assert ledger >= 1000
