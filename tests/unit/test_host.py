"""Host detection and core assignment on synthetic topologies."""

from __future__ import annotations

from pathlib import Path

import pytest

from packrat_lab.errors import InfeasiblePlanError
from packrat_lab.host import HostInfo, assign_cores, cgroup_cpu_quota, detect_host, parse_cpu_list


def test_parse_cpu_list() -> None:
    assert parse_cpu_list("0-3,8,10-11\n") == [0, 1, 2, 3, 8, 10, 11]


def test_quota_from_cpu_max(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert cgroup_cpu_quota(tmp_path) == 1.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_quota(tmp_path) is None


def two_socket_smt() -> HostInfo:
    """8 logical CPUs: 2 NUMA nodes of 2 cores, each core with an SMT sibling."""
    siblings = {0: (0, 4), 4: (0, 4), 1: (1, 5), 5: (1, 5), 2: (2, 6), 6: (2, 6), 3: (3, 7), 7: (3, 7)}
    return HostInfo("test", tuple(range(8)), None, siblings, {0: (0, 1, 4, 5), 1: (2, 3, 6, 7)})


def test_smt_siblings_skipped_and_quota_caps() -> None:
    host = two_socket_smt()
    assert host.primary_cpus == (0, 1, 2, 3)
    assert host.usable_cores == 4
    quota = HostInfo("test", tuple(range(8)), 2.5, host.siblings, host.numa_nodes)
    assert quota.usable_cores == 2


def test_assign_keeps_instances_inside_numa_nodes() -> None:
    cores = assign_cores([2, 1, 1], two_socket_smt())
    assert cores[0] in ((0, 1), (2, 3))
    flat = [c for group in cores for c in group]
    assert len(set(flat)) == 4
    node_of_first = {0: 0, 1: 0, 2: 1, 3: 1}
    assert len({node_of_first[c] for c in cores[0]}) == 1


def test_assign_refuses_oversubscription() -> None:
    with pytest.raises(InfeasiblePlanError, match="needs 5 cores but this host has 4 usable"):
        assign_cores([2, 2, 1], two_socket_smt())


def test_detect_host_sees_this_process() -> None:
    host = detect_host()
    assert host.usable_cores >= 1
    assert set(host.primary_cpus) <= set(host.affinity)


def test_require_cores_refuses_more_than_usable() -> None:
    from packrat_lab.host import require_cores

    host = two_socket_smt()
    assert require_cores(4, host) == 4
    with pytest.raises(
        InfeasiblePlanError, match="cores=5 is more than the 4 usable cores of this host; example: cores=4"
    ):
        require_cores(5, host)
    with pytest.raises(ValueError, match="positive integer"):
        require_cores(0, host)
