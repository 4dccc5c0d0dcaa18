"""The lock files (``requirements/``) are what every install uses: they must hold a pinned,
hashed release of everything pyproject.toml asks for, within its bounds."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
_PIN = re.compile(r"^([A-Za-z0-9._-]+)(?:\[[^\]]*\])?==([^\s;\\]+)")


def pins(lock: str) -> dict[str, tuple[str, int]]:
    """``name -> (version, number of hashes)`` of a lock file."""
    found: dict[str, tuple[str, int]] = {}
    name = None
    for line in (ROOT / "requirements" / lock).read_text().splitlines():
        match = _PIN.match(line)
        if match:
            name = canonicalize_name(match[1])
            found[name] = (match[2], 0)
        elif name and line.strip().startswith("--hash=sha256:"):
            version, hashes = found[name]
            found[name] = (version, hashes + 1)
    return found


def requirements(*, dev: bool) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    listed = project["dependencies"] + (project["optional-dependencies"]["dev"] if dev else [])
    return [Requirement(text) for text in listed]


@pytest.mark.parametrize(("lock", "dev"), [("lock.txt", False), ("dev.txt", True)])
def test_the_lock_pins_every_dependency_within_pyproject_bounds(lock, dev):
    locked = pins(lock)
    wrong = {
        requirement.name: locked.get(canonicalize_name(requirement.name), ("missing", 0))[0]
        for requirement in requirements(dev=dev)
        if locked.get(canonicalize_name(requirement.name), ("missing", 0))[0] == "missing"
        or not requirement.specifier.contains(locked[canonicalize_name(requirement.name)][0])
    }
    assert wrong == {}, "run `make lock`"


@pytest.mark.parametrize("lock", ["lock.txt", "dev.txt"])
def test_every_locked_release_carries_its_hashes(lock):
    assert {name for name, (_, hashes) in pins(lock).items() if hashes == 0} == set()


def test_the_development_lock_keeps_the_runtime_pins():
    runtime, dev = pins("lock.txt"), pins("dev.txt")
    assert {n: v for n, (v, _) in runtime.items() if dev.get(n, ("", 0))[0] != v} == {}
