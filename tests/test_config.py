"""Configuration from TOML and the environment, and the README's settings table."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hub.config import ConfigError, load_config, settings_markdown
from server import worker_process


def test_environment_overrides_the_toml_file(tmp_path: Path) -> None:
    toml = tmp_path / "hub.toml"
    toml.write_text('[hub]\nport = 9001\nhost = "0.0.0.0"\naccess_log = false\n')
    config = load_config({"HUB_PORT": "9002"}, toml)
    assert config.port == 9002 and config.host == "0.0.0.0" and config.access_log is False
    assert load_config({}).port == 8080


def test_unknown_or_malformed_settings_are_refused(tmp_path: Path) -> None:
    toml = tmp_path / "hub.toml"
    toml.write_text("[hub]\nprot = 1\n")
    with pytest.raises(ConfigError, match="prot"):
        load_config({}, toml)
    with pytest.raises(ConfigError, match="port"):
        load_config({"HUB_PORT": "eighty"})


def test_readme_lists_every_setting() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    assert settings_markdown() in readme, "regenerate the table with `hub config --markdown`"


def test_the_ais_max_lag_is_0_or_more() -> None:
    assert load_config({}).ai_max_lag == 500
    assert load_config({"HUB_AI_MAX_LAG": "0"}).ai_max_lag == 0
    with pytest.raises(ConfigError, match="ai_max_lag"):
        load_config({"HUB_AI_MAX_LAG": "-1"})


def test_roles_are_checked() -> None:
    assert load_config({"HUB_ROLE": "worker"}).role == "worker"
    with pytest.raises(ConfigError, match="role"):
        load_config({"HUB_ROLE": "everything"})
    with pytest.raises(ConfigError, match="REDIS_URL"):
        load_config({"HUB_ROLE": "gateway"})
    assert load_config({"HUB_ROLE": "gateway", "REDIS_URL": "redis://x"}).role == "gateway"
    # without Redis, the gateway and the workers meet in the shared PostgreSQL
    assert load_config({"HUB_ROLE": "gateway", "DATABASE_URL": "postgresql://x"}).role == "gateway"


def test_worker_processes_split_only_role_all_in_two(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_config({}).worker_processes is None  # hub serve decides
    assert load_config({"HUB_WORKER_PROCESSES": "0"}).worker_processes == 0
    assert load_config({"HUB_WORKER_PROCESSES": "1"}).worker_processes == 1
    with pytest.raises(ConfigError, match="worker_processes: 0 or 1"):
        load_config({"HUB_WORKER_PROCESSES": "2"})
    with pytest.raises(ConfigError, match="only with role all"):
        load_config({"HUB_WORKER_PROCESSES": "1", "HUB_ROLE": "worker"})
    # unset: split where two CPUs are there to share, one process on one CPU or in another role
    for cpus, role, split in ((2, "all", 1), (1.5, "all", 0), (8, "all", 1), (8, "worker", 0)):
        monkeypatch.setattr(worker_process, "usable_cpus", lambda cpus=cpus: cpus)
        env = {"HUB_ROLE": role, "DATABASE_URL": "postgresql://x"}
        assert worker_process.decided(load_config(env)).worker_processes == split
    # set: as set
    assert worker_process.decided(load_config({"HUB_WORKER_PROCESSES": "0"})).worker_processes == 0
    assert worker_process.usable_cpus() >= 1


def test_usable_cpus_follow_the_cgroup_quota(tmp_path: Path) -> None:
    """A container given 1.5 CPUs on a larger host runs one process (the split wants two)."""
    cpu_max = tmp_path / "cpu.max"
    affinity = len(os.sched_getaffinity(0))
    cpu_max.write_text("150000 100000\n")
    assert worker_process.usable_cpus(cpu_max) == min(affinity, 1.5)
    cpu_max.write_text("max 100000\n")  # no quota
    assert worker_process.usable_cpus(cpu_max) == affinity
    cpu_max.write_text("garbled")  # unreadable: the affinity alone
    assert worker_process.usable_cpus(cpu_max) == affinity
    assert worker_process.usable_cpus(tmp_path / "missing") == affinity


def test_values_are_typed_and_a_misspelt_boolean_is_refused() -> None:
    config = load_config({"HUB_ACCESS_LOG": "off", "HUB_RATE_LIMIT_LOGIN": "2.5"})
    assert config.access_log is False and config.rate_limit_login == 2.5
    assert load_config({"HUB_ACCESS_LOG": "Yes"}).access_log is True
    with pytest.raises(ConfigError, match=r"HUB_ACCESS_LOG .*'ture' is not a boolean"):
        load_config({"HUB_ACCESS_LOG": "ture"})
    with pytest.raises(ConfigError, match="HUB_RATE_LIMIT_LOGIN"):
        load_config({"HUB_RATE_LIMIT_LOGIN": "fast"})
