"""`spikeforge run`: train -> quantize -> QNet -> Verilog -> cocotb -> energy, as named passes.

The data and training are the trainer's (:func:`spikeforge.model.trainer.load_data`,
:func:`~spikeforge.model.trainer.fit`: any data set, class count and layer list of
a training config), the QNet its lowering
(:func:`~spikeforge.model.trainer.lower_to_qnet`).

Each pass is a small function that reads the shared :class:`RunState`, adds its
product, and checks what it hands on. Everything is written into a staging
folder beside ``--out`` that replaces ``--out`` only when every pass succeeded,
so a failed run leaves no half-written output.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from spikeforge import jsonio
from spikeforge.config import RunConfig, train_config
from spikeforge.energy import energy_report
from spikeforge.qnet import QNet, save_qnet
from spikeforge.reference import RefResult, predict, simulate
from spikeforge.staging import staged_output

__all__ = ["PASSES", "RunState", "run_pipeline"]


@dataclass
class RunState:
    cfg: RunConfig
    stage: Path
    console: Console
    source: str = "config"  # the config file, named in error lines
    timings: dict[str, float] = field(default_factory=dict)
    data: tuple[np.ndarray, ...] | None = None
    spikes_test: np.ndarray | None = None
    model: Any = None
    acc_float: float | None = None
    qnet: QNet | None = None
    ref: RefResult | None = None
    rtl: Any = None
    report: dict[str, Any] = field(default_factory=dict)


def _progress(console: Console) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(),
                    TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=console)


def pass_data(st: RunState) -> None:
    """Load the data set as the trainer does and encode the test set once (seeded)."""
    from spikeforge.model.trainer import encode_spikes, load_data

    tcfg = train_config(st.cfg)
    st.data = load_data(tcfg, st.source)
    # the spikes the float model, the QNet reference and the RTL all see
    st.spikes_test = encode_spikes(tcfg, st.data[2])


def pass_train(st: RunState) -> None:
    """The trainer's surrogate-gradient BPTT of the config's SNN (spikeforge train's path)."""
    from spikeforge.model.trainer import fit, predict_spikes

    cfg = st.cfg
    with _progress(st.console) as prog:
        task = prog.add_task("train", total=cfg.train.epochs, info="")

        def on_epoch(h: dict) -> None:
            prog.update(task, completed=h["epoch"],
                        info=f"loss {h['loss']:.3f} acc {h['train_accuracy']:.3f}")

        st.model, _ = fit(train_config(cfg), st.data, on_epoch=on_epoch, source=st.source)
    pred = predict_spikes(st.model, st.spikes_test, cfg.model.input_shape)
    st.acc_float = float(np.mean(pred == np.asarray(st.data[3])))


def pass_quantize(st: RunState) -> None:
    """Lower the SNN to a QNet, save it, and run the bit-exact reference on the test set."""
    from spikeforge.model.trainer import lower_to_qnet

    st.qnet = lower_to_qnet(st.model, train_config(st.cfg), source=st.source, field="quantize")
    save_qnet(st.qnet, st.stage / "model")
    st.ref = simulate(st.qnet, st.spikes_test)


def pass_rtl(st: RunState) -> None:
    """Generate Verilog and run it under cocotb on the chosen samples."""
    from spikeforge.hw.export import write_verilog
    from spikeforge.sim.protocol import compare, expected
    from spikeforge.sim.runner import run_rtl

    r = st.cfg.rtl
    n = len(st.spikes_test) if r.samples == "all" else min(r.samples, len(st.spikes_test))
    x = st.spikes_test[:n]
    st.console.print(f"[bold]rtl[/]: {r.simulator} ({r.mode}), {n} samples, "
                     f"{st.qnet.timesteps} steps each")
    verilog = write_verilog(st.qnet, st.stage / "rtl")
    if r.mode == "fast":
        from spikeforge.sim.fast import run_fast

        result = run_fast(st.qnet, x, simulator=r.simulator, build_dir=st.stage / "sim_build",
                          verilog=verilog).result
    else:
        result = run_rtl(st.qnet, x, simulator=r.simulator, build_dir=st.stage / "sim_build",
                         verilog=verilog, stall_seed=r.stall_seed).result
    ref_n = expected(st.qnet, x)
    mismatches = compare(ref_n, result)
    st.rtl = (n, result, ref_n, mismatches)
    for mm in mismatches[:5]:
        st.console.print(f"[red]mismatch[/] {mm}")


def pass_report(st: RunState) -> None:
    """Energy from both counter sources, report.json, a raster plot and a summary table."""
    from spikeforge.hw.layout import HardwareLayout

    n, result, ref_n, mismatches = st.rtl
    y_te = np.asarray(st.data[3])
    last = st.qnet.layers[-1].name
    rtl_scores = result.membrane[last] if not st.qnet.layers[-1].fire else \
        result.spikes[last].sum(axis=1)
    counters = {
        "reference": _mean_counters(ref_n.counters),
        "rtl": _mean_counters(result.counters),
    }
    # the run builds the default layout (one tile per layer): cost the memories it builds
    layout = HardwareLayout.default(st.qnet)
    energy = energy_report(st.qnet, result.counters, source="rtl counters", layout=layout)
    energy_ref = energy_report(st.qnet, ref_n.counters, source="reference simulator",
                               layout=layout)
    report = {
        "config": st.cfg.model_dump(mode="json"),
        "accuracy": {
            "float": st.acc_float,
            "qnet": float(np.mean(st.ref.predictions == y_te)),
            "rtl": float(np.mean(predict(rtl_scores) == y_te[:n])),
            "samples": int(len(y_te)),
            "rtl_samples": int(n),
        },
        "rtl": {
            "simulator": st.cfg.rtl.simulator,
            "samples": int(n),
            "mismatches": len(mismatches),
            "first_mismatches": [str(m) for m in mismatches[:10]],
            "cycles_per_sample": float(np.mean(result.cycles)),
            "mode": st.cfg.rtl.mode,
            "verilog": "rtl/spikeforge_top.v",
        },
        "counters": counters,
        "counters_equal": counters["reference"] == counters["rtl"] and not mismatches,
        "energy": {
            "snn_pj": energy["snn_pj"], "ann_pj": energy["ann_pj"], "ee": energy["ee"],
            "hardware_pj": energy["hardware_pj"], "source": energy["source"],
            "reference_snn_pj": energy_ref["snn_pj"], "detail": energy,
        },
        "timings_s": st.timings,
    }
    st.report = report
    _plot_raster(st, st.stage / "raster.png")
    (st.stage / "report.json").write_text(jsonio.dumps(report))


def _mean_counters(c: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, int]]:
    """Totals over the samples run (integers, so equality is exact)."""
    return {layer: {k: int(v.sum()) for k, v in cs.items()} for layer, cs in c.items()}


def _plot_raster(st: RunState, path: Path) -> None:
    """Input and hidden spike rasters of sample 0 read from the RTL, and its readout scores."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n, result, ref_n, _ = st.rtl
    spiking = [l.name for l in st.qnet.layers if l.fire]
    last = st.qnet.layers[-1]
    fig, axes = plt.subplots(1, len(spiking) + 2, figsize=(4 * (len(spiking) + 2), 3.2))
    panels = [("input spikes", st.spikes_test[0])]
    panels += [(f"{k} spikes (RTL)", result.spikes[k][0]) for k in spiking]
    for ax, (title, s) in zip(axes, panels):
        t, j = np.nonzero(s)
        ax.scatter(t, j, s=6, marker="|", color="k")
        ax.set(title=f"{title}, sample 0", xlabel="time step", ylabel="neuron",
               xlim=(-0.5, s.shape[0] - 0.5))
    scores = result.membrane[last.name][0] if not last.fire else \
        result.spikes[last.name][0].sum(axis=0)
    ax = axes[-1]
    ax.bar(np.arange(len(scores)), scores, color="tab:blue")
    ax.bar([int(np.argmax(scores))], [scores.max()], color="tab:orange", label="predicted")
    ax.set(title=f"{last.name} scores (RTL), label {int(st.data[3][0])}", xlabel="class",
           ylabel="final membrane" if not last.fire else "spike count")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


PASSES: tuple[tuple[str, Callable[[RunState], None]], ...] = (
    ("data", pass_data),
    ("train", pass_train),
    ("quantize", pass_quantize),
    ("rtl", pass_rtl),
    ("report", pass_report),
)


def run_pipeline(cfg: RunConfig, out: Path, console: Console | None = None,
                 inputs: list | None = None) -> dict[str, Any]:
    """Run every pass into a staging folder, then move it to ``out``; return the report.

    ``inputs`` are the files the run reads (its config); ``out`` may not hold them.
    """
    console = console or Console()
    out = out.resolve()
    with staged_output(out, inputs or []) as stage:
        st = RunState(cfg=cfg, stage=stage, console=console,
                      source=str(inputs[0]) if inputs else "config")
        for name, fn in PASSES:
            t0 = time.perf_counter()
            console.print(f"[bold cyan]pass[/] {name}: {fn.__doc__.splitlines()[0]}")
            fn(st)
            st.timings[name] = round(time.perf_counter() - t0, 2)
        (stage / "report.json").write_text(jsonio.dumps(st.report | {"timings_s": st.timings}))
    _summary(console, st.report, out)
    return st.report


def _summary(console: Console, r: dict[str, Any], out: Path) -> None:
    t = Table(title=f"spikeforge run -> {out}")
    t.add_column("figure")
    t.add_column("value", justify="right")
    a = r["accuracy"]
    t.add_row("accuracy float / qnet / rtl",
              f"{a['float']:.4f} / {a['qnet']:.4f} / {a['rtl']:.4f}")
    t.add_row("test samples / through RTL", f"{a['samples']} / {a['rtl_samples']}")
    t.add_row(f"RTL mismatches ({r['rtl']['simulator']})", str(r["rtl"]["mismatches"]))
    t.add_row("counters reference == RTL", str(r["counters_equal"]))
    t.add_row("cycles per sample (mean)", f"{r['rtl']['cycles_per_sample']:.1f}")
    e = r["energy"]
    t.add_row("energy SNN / ANN (Panda, pJ)", f"{e['snn_pj']:.1f} / {e['ann_pj']:.1f}")
    t.add_row("EE = E_ANN / E_SNN", f"{e['ee']:.2f}")
    t.add_row("hardware-aware energy (pJ)", f"{e['hardware_pj']:.1f}")
    t.add_row("wall time (s)", f"{sum(r['timings_s'].values()):.1f}")
    console.print(t)
