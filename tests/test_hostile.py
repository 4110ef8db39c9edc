"""Hostile input for every subcommand: refused in one line, exit status 2, nothing touched.

The cases are generated in ``tests/hostile_cases.py``. Each one starts from a
small valid workspace (a copy per case), changes one thing, runs the command
and checks the contract of README.md ("Bad input"):

1. exit status 2;
2. exactly one stderr line, starting ``spikeforge: error: ``, naming the file
   and the field (or the option);
3. no ``Traceback`` anywhere;
4. a snapshot of the workspace (every path, content hash and mode, hidden
   entries too) is unchanged: nothing of the user's changed or deleted, and
   nothing new (no --out folder, no staging folder, no half-written file);
5. an answer within the per-case time limit.

Most cases run in-process (``spikeforge.cli.main``), with the entry points of
real work (training, Verilog generation, simulation, mapping, synthesis, DSE
workers, a board) replaced by tripwires: a bad input must be refused before
any of them. Cases that attack memory or recursion (YAML alias bombs, 20,000
levels of nesting, huge sizes) run in a real process with an address-space
limit and a timeout.

A failure message starts with ``HOSTILE[tag;...]``: the breaches, most telling
first (``reached-real-work(...)``, ``traceback(KeyError)``, ``exit-status-1``,
``stderr-3-lines``, ``user-file-deleted``, ``leftover-output``, ...).
"""

from __future__ import annotations

import os
import shutil
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import hostile_cases as hc
import pytest

CASES = hc.all_cases()
VALID = hc.valid_cases()


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hostile-template") / "ws"
    hc.build_workspace(root)
    return root


def _as_process(case: hc.Case) -> bool:
    return case.proc or (case.unprivileged and hc.is_root())


def _run_case_in_process(case: hc.Case, w: Path) -> tuple[hc.Outcome, dict[str, list[str]]]:
    """Mutate ``w``, run ``case`` as a real process there; the outcome and the snapshot diff."""
    if case.mutate is not None:
        case.mutate(w)
    uid = None
    if case.unprivileged and hc.is_root():
        hc.give_to_nobody(w.parent)
        uid = hc.NOBODY
    before = hc.snapshot(w)
    o = hc.run_process(list(case.argv), w, uid=uid)
    return o, hc.snapshot_diff(before, hc.snapshot(w))


@pytest.fixture(scope="module", autouse=True)
def process_cases(template, tmp_path_factory, request):
    """The selected real-process cases, started at once in the background (other cores).

    As root, a case that needs a read-only folder runs as user ``nobody`` in a workspace
    that nobody owns (chmod does not stop root).
    """
    selected = {item.callspec.id for item in request.session.items
                if getattr(item, "originalname", "") == "test_hostile"
                and hasattr(item, "callspec")}
    pool = ThreadPoolExecutor(max_workers=2)
    futures: dict[str, Future] = {}
    tops: list[Path] = []
    for case in CASES:
        if case.id not in selected or not _as_process(case) or (
                case.skip is not None and case.skip()):
            continue
        if case.unprivileged and hc.is_root():
            w = hc.nobody_workspace(template)
            tops.append(w.parent)
        else:
            w = tmp_path_factory.mktemp("hostile-proc") / "ws"
            shutil.copytree(template, w, symlinks=True)
        futures[case.id] = pool.submit(_run_case_in_process, case, w)
    yield futures
    pool.shutdown(wait=True, cancel_futures=True)
    for top in tops:
        hc.chmod_back(top)
        shutil.rmtree(top, ignore_errors=True)


@pytest.fixture
def workspace(template, tmp_path) -> Path:
    w = tmp_path / "ws"
    shutil.copytree(template, w, symlinks=True)
    yield w
    hc.chmod_back(w)


def test_enough_cases():
    assert len(CASES) >= 170
    commands = {c.argv[0] + (" " + c.argv[1] if c.argv[:1] == ("board",) and len(c.argv) > 1
                             else "") for c in CASES if c.argv}
    for cmd in ("run", "train", "rtl", "sim", "verify", "map", "dse", "build", "board run"):
        assert cmd in commands, cmd
    assert len(VALID) >= 10


def test_workspace_is_valid(template):
    """Every fixture a case corrupts is valid as written: a case changes exactly one thing."""
    from spikeforge.config import load_config
    from spikeforge.dse.study import load_study
    from spikeforge.mapping.hardware import load_hardware
    from spikeforge.qnet import load_qnet

    net = load_qnet(template / "net.qnet.yaml")
    assert net.timesteps == hc.QNET_T and net.n_in == hc.N_IN
    load_config(template / "cfg.yaml")
    load_study(template / "study.yaml")
    load_hardware(template / "hw.yaml")
    from spikeforge.hw.layout import load_layout

    load_layout(template / "mapping.yaml", net)


def test_train_config_is_valid(template):
    pytest.importorskip("torch")
    from spikeforge.model.config import load_train_config

    load_train_config(template / "train.yaml")


@pytest.mark.parametrize("command", list(hc.BASE), ids=[c.replace(" ", "-") for c in hc.BASE])
def test_base_command_reaches_real_work(command, workspace, monkeypatch, capfd):
    """The unchanged command is not refused: it gets as far as the real work (a tripwire)."""
    monkeypatch.chdir(workspace)
    hc.install_tripwires(monkeypatch)
    o = hc.run_inprocess(list(hc.BASE[command]), capfd)
    assert o.tripped or o.status == 0, f"status {o.status}\n{o.err[-3000:]}"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile(case: hc.Case, workspace: Path, monkeypatch, capfd, process_cases):
    if case.skip is not None:
        reason = case.skip()
        if reason:
            pytest.skip(reason)
    if _as_process(case):  # started in the background by process_cases, in its own workspace
        o, diff = process_cases[case.id].result(timeout=3 * hc.TIMEOUT_S)
    else:
        if case.mutate is not None:
            case.mutate(workspace)
        before = hc.snapshot(workspace)
        monkeypatch.chdir(workspace)
        hc.install_tripwires(monkeypatch)
        o = hc.run_inprocess(list(case.argv), capfd)
        diff = hc.snapshot_diff(before, hc.snapshot(workspace))
    for outside in ("/proc/spikeforge-hostile",):
        if any(outside in a for a in case.argv) and os.path.lexists(outside):
            diff["new"].append(outside)
    tags = hc.violations(case, o, diff)
    assert not tags, hc.describe(case, o, diff, tags)


@pytest.mark.parametrize("case", VALID, ids=[c.id for c in VALID])
def test_valid_still_works(case: hc.Valid, workspace: Path, monkeypatch, capfd):
    for prog in case.needs:
        if shutil.which(prog) is None:
            pytest.skip(f"{prog} is not on PATH")
    if case.mutate is not None:
        case.mutate(workspace)
    argv = list(case.argv)
    if case.id == "rtl-absolute-qnet-path":
        argv[1] = str(workspace / argv[1])
    inputs = {k: v for k, v in hc.snapshot(workspace).items()
              if k.split(os.sep)[0] not in ("out", "a", "empty")}
    monkeypatch.chdir(workspace)
    o = hc.run_inprocess(argv, capfd)
    assert not o.timed_out, f"no answer within {hc.TIMEOUT_S} s"
    assert "Traceback" not in o.out + o.err, o.err[-3000:]
    assert o.status == 0, f"status {o.status}\n{o.err[-3000:]}"
    assert "error" not in o.err.lower(), o.err[-3000:]
    after = hc.snapshot(workspace)
    changed = [k for k, v in inputs.items() if after.get(k) != v]
    assert not changed, f"inputs changed or deleted: {changed}"
    if case.check is not None:
        case.check(workspace)
