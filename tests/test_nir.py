"""NIR export and import: round trips, hand-made graphs with known spikes, refusals, snnTorch."""

from __future__ import annotations

import os
import sys
import warnings

import numpy as np
import pytest
import torch

nir = pytest.importorskip("nir", reason="NIR support needs the nir extra (pip install -e .[nir])")

from spikeforge import reference  # noqa: E402
from spikeforge.model.layers import (  # noqa: E402
    LIF,
    Conv2d,
    Dense,
    DenseReadout,
    Flatten,
    Pool2d,
    PoolKind,
    SpikeCountReadout,
)
from spikeforge.model.mlp import LIFMLP  # noqa: E402
from spikeforge.model.network import SNN  # noqa: E402
from spikeforge.model.nir_io import (  # noqa: E402
    NIRError,
    dense_equivalent,
    from_nir,
    leak_shifts_for,
    nir_to_qnet,
    read_nir,
    snn_to_qnet,
    threshold_from_nir,
    threshold_to_nir,
    to_nir,
    write_nir,
)
from spikeforge.qnet import Reset  # noqa: E402


def _spikes(shape: tuple[int, ...], p: float = 0.3, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(*shape, generator=g) < p).float()


def _conv_snn(reset: Reset = Reset.ZERO) -> SNN:
    torch.manual_seed(3)
    return SNN([
        Conv2d(1, 4, 3, padding=1), LIF(0.75, 0.5, reset=reset),
        Pool2d(2, PoolKind.SUM), Flatten(),
        Dense(64, 12), LIF(1.0, 0.7, reset=reset),  # IF
        Dense(12, 6, bias=False), LIF(0.9, 0.2, reset=reset),  # a float leak
        DenseReadout(6, 3, beta=0.875),
    ])


def _same_run(a: SNN, b: SNN, x: torch.Tensor) -> None:
    with torch.no_grad():
        ra, rb = a.run(x), b.run(x)
    assert len(ra.spikes) == len(rb.spikes)
    for sa, sb in zip(ra.spikes, rb.spikes):
        assert sa.sum() > 0
        assert torch.equal(sa, sb)
    torch.testing.assert_close(ra.scores, rb.scores, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- round trips

def test_round_trip_conv_network_through_a_file(tmp_path) -> None:
    model = _conv_snn()
    graph = to_nir(model, (1, 8, 8))
    kinds = [type(n).__name__ for _, n in sorted(graph.nodes.items())]
    assert {"Conv2d", "LIF", "IF", "SumPool2d", "Flatten", "Affine", "Linear", "LI"} <= set(kinds)
    write_nir(graph, tmp_path / "net.nir")
    back = from_nir(read_nir(tmp_path / "net.nir"))
    assert back.input_shape == (1, 8, 8)
    assert back.layer_nodes[-1] == "readout"
    _same_run(model, back.snn, _spikes((16, 24, 1, 8, 8)))


def test_round_trip_lifmlp_spike_count_and_average_pool() -> None:
    torch.manual_seed(1)
    mlp = LIFMLP([20, 16, 5], leak_shifts=(2,), threshold=0.4, bias=True)
    back = from_nir(to_nir(mlp, (20,)))
    x = _spikes((8, 15, 20), seed=1)  # [B, T, n]
    with torch.no_grad():
        ref = mlp.run(x)
        got = back.snn.run(x.transpose(0, 1))
    assert torch.equal(ref.spikes[0], got.spikes[0].transpose(0, 1))
    torch.testing.assert_close(ref.scores, got.scores, rtol=1e-5, atol=1e-5)

    torch.manual_seed(2)
    model = SNN([Conv2d(2, 3, 3), LIF(0.5, 0.3), Pool2d(2, PoolKind.AVERAGE), Flatten(),
                 Dense(27, 4), LIF(0.8125, 0.2), SpikeCountReadout()])
    graph = to_nir(model, (2, 8, 8))
    assert any(isinstance(n, nir.AvgPool2d) for n in graph.nodes.values())
    back = from_nir(graph)
    assert isinstance(back.snn.layers[-1], SpikeCountReadout)
    _same_run(model, back.snn, _spikes((12, 10, 2, 8, 8), p=0.5, seed=2))


def test_subtract_reset_only_as_metadata() -> None:
    model = _conv_snn(Reset.SUBTRACT)
    with pytest.raises(NIRError, match=r"'lif1' \(LIF\): reset 'subtract' has no NIR"):
        to_nir(model, (1, 8, 8))
    graph = to_nir(model, (1, 8, 8), allow_subtract=True)
    back = from_nir(graph)
    assert all(m.params.reset is Reset.SUBTRACT for m in back.snn.layers if isinstance(m, LIF))
    _same_run(model, back.snn, _spikes((16, 24, 1, 8, 8)))


def test_subtract_unleaked_round_trip_gives_the_same_qnet_and_spikes(tmp_path) -> None:
    model = _conv_snn(Reset.SUBTRACT_UNLEAKED)
    with pytest.raises(NIRError, match=r"'lif1' \(LIF\): reset 'subtract_unleaked' has no NIR"):
        to_nir(model, (1, 8, 8))
    graph = to_nir(model, (1, 8, 8), allow_subtract=True)
    lifs = [n for n in graph.nodes.values() if isinstance(n, nir.LIF | nir.IF)]
    assert [n.metadata for n in lifs] == [{"spikeforge_reset": "subtract_unleaked"}] * 3
    write_nir(graph, tmp_path / "net.nir")
    back = from_nir(read_nir(tmp_path / "net.nir"))
    assert all(m.params.reset is Reset.SUBTRACT_UNLEAKED
               for m in back.snn.layers if isinstance(m, LIF))
    _same_run(model, back.snn, _spikes((16, 24, 1, 8, 8)))
    kw = dict(weight_bits=8, membrane_bits=16, timesteps=24, leak_tolerance=1e-3)
    direct = snn_to_qnet(model, (1, 8, 8), **kw)
    imported = nir_to_qnet(read_nir(tmp_path / "net.nir"), **kw)
    for a, b in zip(direct.layers, imported.layers, strict=True):
        assert (a.reset, a.leak_shifts, a.membrane_bits) == (b.reset, b.leak_shifts,
                                                            b.membrane_bits)
        np.testing.assert_array_equal(a.weights, b.weights)
        np.testing.assert_array_equal(a.thresholds, b.thresholds)
        np.testing.assert_array_equal(a.biases, b.biases)
    assert [l.reset for l in direct.layers][:3] == [Reset.SUBTRACT_UNLEAKED] * 3
    x = _spikes((24, 16, 64), p=0.4, seed=4).transpose(0, 1).numpy().astype(np.uint8)
    ra, rb = reference.simulate(direct, x), reference.simulate(imported, x)
    for name in ra.spikes:
        assert ra.spikes[name].any()
        np.testing.assert_array_equal(ra.spikes[name], rb.spikes[name])
    np.testing.assert_array_equal(ra.scores, rb.scores)


def test_snntorch_style_subtract_graph_gives_known_spikes() -> None:
    # snnTorch's Leaky(reset_mechanism="subtract"): v = v + W s - theta s_prev, fires on v > 1;
    # the metadata names the mode, so the graph maps to subtract_unleaked.
    graph = _graph(
        ("in", nir.Input(input_type=np.array([2]))),
        ("w", nir.Linear(weight=np.array([[1.0, 0.5]]))),
        ("if", nir.IF(r=np.array([1.0]), v_threshold=np.array([1.0]),
                      metadata={"spikeforge_reset": "subtract_unleaked"})),
        ("out", nir.Output(output_type=np.array([1]))),
    )
    s_in = np.array([[1, 0], [0, 1], [1, 1], [0, 0], [1, 0], [1, 0]], dtype=np.uint8)
    # v: 1 (no), 1.5 (spike), 1.5 + 1.5 - 1 = 2 (spike), 2 - 1 = 1 (no), 2 (spike), 2 + 1 - 1
    expected = [0, 1, 1, 0, 1, 1]
    net = from_nir(graph)
    with torch.no_grad():
        out = net.snn.run(torch.from_numpy(s_in).float()[:, None, :])
    assert out.spikes[0][:, 0, 0].numpy().tolist() == expected
    q = nir_to_qnet(graph, weight_bits=8, membrane_bits=12, timesteps=len(s_in))
    assert q.layers[0].reset is Reset.SUBTRACT_UNLEAKED
    ref = reference.simulate(q, s_in[None])
    assert ref.spikes[q.layers[0].name][0, :, 0].tolist() == expected
    graph.nodes["if"].metadata["spikeforge_reset"] = "snntorch"
    with pytest.raises(NIRError, match="unknown metadata spikeforge_reset='snntorch' "
                                       r"\(known: 'zero', 'subtract', 'subtract_unleaked'\)"):
        from_nir(graph)


def test_threshold_crossing_is_exact_in_float32() -> None:
    for theta in (1.0, 0.7, 3.25, 1e-3):
        t = np.float32(theta)
        below, above = threshold_to_nir(theta), threshold_from_nir(threshold_to_nir(theta))
        assert above == float(t)
        assert np.float32(t) > np.float32(below) and not np.float32(
            np.nextafter(t, np.float32(-1))) > np.float32(below)


def test_leak_shifts_for() -> None:
    assert leak_shifts_for(0.8125) == (3, 4)
    assert leak_shifts_for(1.0) == ()
    assert leak_shifts_for(1.0 - 1e-4 / 0.00053333335) == (3, 4)  # snnTorch's float32 tau
    assert leak_shifts_for(0.8187) is None  # at most 4 shifts: 0.8203 is the nearest
    assert leak_shifts_for(0.8187, tolerance=2e-3) == (3, 5, 6, 7)


# --------------------------------------------------------------------------- hand-made graphs

def _graph(*nodes: tuple[str, object]) -> nir.NIRGraph:
    names = [n for n, _ in nodes]
    return nir.NIRGraph(nodes=dict(nodes), edges=list(zip(names[:-1], names[1:])))


def test_hand_made_if_graph_gives_known_spikes() -> None:
    # v = v + W s; NIR fires on v > 1 (strictly), then v = 0.
    graph = _graph(
        ("in", nir.Input(input_type=np.array([2]))),
        ("w", nir.Linear(weight=np.array([[1.0, 0.5]]))),
        ("if", nir.IF(r=np.array([1.0]), v_threshold=np.array([1.0]))),
        ("out", nir.Output(output_type=np.array([1]))),
    )
    s_in = np.array([[1, 0], [0, 1], [1, 1], [0, 0], [1, 0], [1, 0]], dtype=np.uint8)
    # v:          1 (= 1, no spike), 1.5 (spike), 1.5 (spike), 0, 1 (no), 2 (spike)
    expected = np.array([0, 1, 1, 0, 0, 1])
    net = from_nir(graph)
    with torch.no_grad():
        out = net.snn.run(torch.from_numpy(s_in).float()[:, None, :])
    assert out.spikes[0][:, 0, 0].numpy().tolist() == expected.tolist()
    q = nir_to_qnet(graph, weight_bits=8, membrane_bits=12, timesteps=len(s_in))
    ref = reference.simulate(q, s_in[None])
    assert ref.spikes[q.layers[0].name][0, :, 0].tolist() == expected.tolist()
    assert ref.scores[0, 0] == 3


def test_hand_made_lif_graph_gain_and_leak_current() -> None:
    # tau = 2 dt: beta = 0.5; r = 4: gain r dt / tau = 2; v_leak = 0.2: current 0.1.
    # With W = 0.25 and input 1 every step: v = 0.5 v + 0.6 -> 0.6, 0.9, 1.05 (spike, 0), ...
    graph = _graph(
        ("in", nir.Input(input_type=np.array([1]))),
        ("w", nir.Affine(weight=np.array([[0.25]]), bias=np.array([0.0]))),
        ("lif", nir.LIF(tau=np.array([2e-4]), r=np.array([4.0]), v_leak=np.array([0.2]),
                        v_threshold=np.array([1.0]))),
        ("out", nir.Output(output_type=np.array([1]))),
    )
    net = from_nir(graph, dt=1e-4)
    lif = net.snn.layers[1]
    assert lif.params.beta == 0.5
    with torch.no_grad():
        out = net.snn.run(torch.ones(9, 1, 1))
    assert out.spikes[0][:, 0, 0].tolist() == [0, 0, 1] * 3
    torch.testing.assert_close(net.snn.layers[0].weight, torch.tensor([[0.5]]))
    torch.testing.assert_close(net.snn.layers[0].bias, torch.tensor([0.1]))
    q = nir_to_qnet(graph, weight_bits=8, membrane_bits=16, timesteps=9)
    assert q.layers[0].leak_shifts == (1,)
    ref = reference.simulate(q, np.ones((1, 9, 1), np.uint8))
    assert ref.spikes[q.layers[0].name][0, :, 0].tolist() == [0, 0, 1] * 3


def test_per_neuron_thresholds_fold_into_the_synapses() -> None:
    graph = _graph(
        ("in", nir.Input(input_type=np.array([3]))),
        ("w", nir.Linear(weight=np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))),
        ("if", nir.IF(r=np.ones(2), v_threshold=np.array([0.5, 2.5]))),
        ("out", nir.Output(output_type=np.array([2]))),
    )
    net = from_nir(graph)
    x = torch.tensor([[1.0, 1.0, 0.0]]).repeat(6, 1)[:, None, :]
    with torch.no_grad():
        s = net.snn.run(x).spikes[0][:, 0]
    # neuron 0: 1 > 0.5 every step; neuron 1: 1, 2, 3 > 2.5 -> every third step
    assert s[:, 0].tolist() == [1.0] * 6
    assert s[:, 1].tolist() == [0, 0, 1, 0, 0, 1]


def test_lowering_composes_conv_pool_flatten_dense_exactly() -> None:
    torch.manual_seed(4)
    run = [Conv2d(2, 3, 3, stride=1, padding=1), Pool2d(2, PoolKind.AVERAGE), Flatten(),
           Dense(48, 5)]
    w, b, shape = dense_equivalent(run, (2, 8, 8))
    assert w.shape == (5, 128) and shape == (5,)
    x = torch.rand(1, 7, 2, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        y = x
        for m in run:
            y = m.double()(y)
    np.testing.assert_allclose(x.reshape(7, -1).numpy() @ w.T + b, y[0].numpy(), atol=1e-12)


def test_conv_network_quantizes_close_to_the_float_model() -> None:
    torch.manual_seed(5)
    model = SNN([Conv2d(1, 4, 3, padding=1), LIF(0.75, 0.5), Pool2d(2, PoolKind.SUM),
                 Flatten(), Dense(64, 10), LIF(0.8125, 1.0), DenseReadout(10, 3)])
    x = _spikes((20, 32, 1, 8, 8), p=0.4, seed=5)
    q = snn_to_qnet(model, (1, 8, 8), weight_bits=12, membrane_bits=24, timesteps=20)
    assert [layer.n_in for layer in q.layers] == [64, 256, 10]
    ref = reference.simulate(q, x.transpose(0, 1).reshape(32, 20, 64).numpy().astype(np.uint8))
    with torch.no_grad():
        out = model.run(x)
    # the QNet numbers the conv's neurons position-major: (y, x, c)
    assert q.meta["neuron_order"] == {q.layers[0].name: {"order": "yxc", "shape": [4, 8, 8]}}
    hidden = out.spikes[0].transpose(0, 1).permute(0, 1, 3, 4, 2).reshape(32, 20, -1).numpy()
    # 12-bit weights: a few threshold crossings flip (and the change persists in the membrane)
    agree = np.mean(ref.spikes[q.layers[0].name] == hidden)
    assert agree > 0.995
    assert np.mean(ref.predictions == out.scores.argmax(1).numpy()) >= 0.9


# --------------------------------------------------------------------------- refusals

def test_unsupported_node_is_refused_with_its_name_and_why() -> None:
    graph = _graph(
        ("in", nir.Input(input_type=np.array([2]))),
        ("w", nir.Linear(weight=np.ones((3, 2)))),
        ("syn", nir.CubaLIF(tau_syn=np.full(3, 2e-4), tau_mem=np.full(3, 5e-4), r=np.ones(3),
                            v_leak=np.zeros(3), v_threshold=np.ones(3))),
        ("out", nir.Output(output_type=np.array([3]))),
    )
    with pytest.raises(NIRError, match=r"^NIR node 'syn' \(CubaLIF\): .*synaptic current"):
        from_nir(graph)


@pytest.mark.parametrize("case, match", [
    ("reset", r"'lif' \(LIF\): v_reset is not 0"),
    ("tau", r"'lif' \(LIF\): tau differs between neurons"),
    ("recurrent", r"'w' \(Linear\): recurrent connection from 'lif'.*feed-forward"),
    ("hidden_li", r"'lif' \(LI\): a non-spiking integrator inside the network"),
    ("beta", r"'lif' \(LIF\): beta = 0.9 is not a hardware leak .* nearest is"),
])
def test_what_a_qnet_cannot_express_is_refused(case: str, match: str) -> None:
    n = 2
    lif = dict(tau=np.full(n, 1e-3), r=np.full(n, 10.0), v_leak=np.zeros(n),
               v_threshold=np.ones(n))
    if case == "reset":
        lif["v_reset"] = np.full(n, 0.5)
    if case == "tau":
        lif["tau"] = np.array([1e-3, 2e-3])
    neuron = nir.LI(**{k: lif[k] for k in ("tau", "r", "v_leak")}) if case == "hidden_li" \
        else nir.LIF(**lif)
    nodes = {"in": nir.Input(input_type=np.array([n])), "w": nir.Linear(weight=np.eye(n)),
             "lif": neuron, "w2": nir.Linear(weight=np.eye(n)),
             "out": nir.Output(output_type=np.array([n]))}
    edges = [("in", "w"), ("w", "lif"), ("lif", "w2"), ("w2", "out")]
    if case == "recurrent":
        edges.append(("lif", "w"))
        edges.remove(("lif", "w2"))
        edges.remove(("w2", "out"))
        edges.append(("lif", "out"))
        del nodes["w2"]
    graph = nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)
    with pytest.raises(NIRError, match=match):
        nir_to_qnet(graph, weight_bits=8, membrane_bits=16, timesteps=4, dt=1e-4)
    if case == "beta":  # the float import takes any leak; a looser tolerance takes the nearest
        assert from_nir(graph).snn.layers[1].params.beta == pytest.approx(0.9)
        q = nir_to_qnet(graph, weight_bits=8, membrane_bits=16, timesteps=4,
                        leak_tolerance=0.01)
        assert q.layers[0].beta == pytest.approx(0.9, abs=0.01)


def test_export_refuses_a_refractory_period() -> None:
    model = SNN([Dense(4, 3), LIF(0.5, refractory=2), DenseReadout(3, 2)])
    with pytest.raises(NIRError, match=r"'lif1' \(LIF\): a refractory period"):
        to_nir(model, (4,))


# --------------------------------------------------------------------------- snnTorch (peers)

def _import_snntorch():
    """snnTorch, importable or in ``SPIKEFORGE_PEERS``; fails, never skips, when absent."""
    path = os.environ.get("SPIKEFORGE_PEERS")
    if path and path not in sys.path:
        sys.path.insert(0, path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import snntorch
            from snntorch.export_nir import export_to_nir
    except ImportError as e:
        pytest.fail(f"the peers test needs snnTorch ({e}); install it beside the project's torch "
                    "with `pip install --no-deps --target DIR snntorch loguru` and set "
                    "SPIKEFORGE_PEERS=DIR")
    return snntorch, export_to_nir


@pytest.mark.peers
def test_snntorch_graph_imports_with_the_same_predictions() -> None:
    snn, export_to_nir = _import_snntorch()
    from spikeforge.encoding import bernoulli
    from spikeforge.model.data import load_digits_split

    torch.manual_seed(0)
    x_tr, y_tr, x_te, _ = load_digits_split(seed=0)

    def leaky(n: int, **kw):
        return snn.Leaky(beta=torch.full((n,), 0.8125), threshold=torch.ones(n),
                         reset_mechanism="zero", init_hidden=True, **kw)

    net = torch.nn.Sequential(torch.nn.Linear(64, 64), leaky(64), torch.nn.Linear(64, 10),
                              leaky(10, output=True))

    def counts(s: torch.Tensor) -> torch.Tensor:
        for m in net:
            if isinstance(m, snn.Leaky):
                m.reset_mem()
        return sum(net(s[:, t])[0] for t in range(s.shape[1]))

    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    for i in range(0, len(x_tr), 64):  # one epoch
        s = torch.from_numpy(bernoulli(x_tr[i:i + 64], 16, seed=i)).float()
        loss = torch.nn.functional.cross_entropy(counts(s), torch.from_numpy(y_tr[i:i + 64]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    spikes = bernoulli(x_te, 16, seed=99)
    with torch.no_grad():
        pred = counts(torch.from_numpy(spikes).float()).argmax(1).numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # snnTorch uses nirtorch's old tracer
        graph = export_to_nir(net, torch.zeros(1, 64), ignore_dims=[0])
    imported = from_nir(graph)
    with torch.no_grad():
        pred_float = imported.snn(torch.from_numpy(spikes).float().transpose(0, 1)).argmax(1)
    assert np.array_equal(pred_float.numpy(), pred)
    q = nir_to_qnet(graph, weight_bits=8, membrane_bits=16, timesteps=16)
    agree = np.mean(reference.simulate(q, spikes).predictions == pred)
    assert agree >= 0.97, agree


def test_conv_neurons_are_numbered_position_major() -> None:
    """A contiguous range of a lowered conv's neurons reads a small receptive field."""
    torch.manual_seed(2)
    model = SNN([Conv2d(1, 4, 3, padding=1), LIF(0.75, 1.0), Flatten(), Dense(256, 10),
                 LIF(0.75, 1.0), DenseReadout(10, 3)])

    def widest(order: str) -> int:
        q = snn_to_qnet(model, (1, 8, 8), weight_bits=8, membrane_bits=16, timesteps=4,
                        neuron_order=order)
        w = np.asarray(q.layers[0].weights)
        return max(int(np.any(w[i:i + 32] != 0, axis=0).sum()) for i in range(0, 256, 32))

    assert widest("position") == 24  # one output row, 8 positions x 4 channels: 3 x 8 lines
    assert widest("channel") == 40  # 4 output rows of one channel: 5 x 8 lines
    x = _spikes((4, 16, 1, 8, 8), p=0.4, seed=1).transpose(0, 1).reshape(16, 4, 64)
    x = x.numpy().astype(np.uint8)
    a = snn_to_qnet(model, (1, 8, 8), weight_bits=8, membrane_bits=16, timesteps=4)
    b = snn_to_qnet(model, (1, 8, 8), weight_bits=8, membrane_bits=16, timesteps=4,
                    neuron_order="channel")
    ra, rb = reference.simulate(a, x), reference.simulate(b, x)
    np.testing.assert_array_equal(ra.scores, rb.scores)  # the same network, renumbered


@pytest.mark.peers
def test_snntorch_subtract_network_imports_as_subtract_unleaked_spike_for_spike() -> None:
    """snnTorch's default reset (subtract, delayed) with the metadata is subtract_unleaked."""
    snn, export_to_nir = _import_snntorch()
    torch.manual_seed(1)
    lif = [snn.Leaky(beta=torch.full((n,), 0.8125), threshold=torch.ones(n),
                     reset_mechanism="subtract", init_hidden=True) for n in (24, 10)]
    net = torch.nn.Sequential(torch.nn.Linear(32, 24), lif[0], torch.nn.Linear(24, 10), lif[1])
    with torch.no_grad():
        for m in net:
            if isinstance(m, torch.nn.Linear):
                m.weight.mul_(3.0)
    spikes = _spikes((20, 64, 32), p=0.4, seed=9)  # [T, B, n_in]
    with torch.no_grad():
        for m in lif:
            m.reset_mem()
        hidden, out = [], []
        for t in range(spikes.shape[0]):
            h = net[1](net[0](spikes[t]))
            hidden.append(h)
            out.append(net[3](net[2](h)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        graph = export_to_nir(net, torch.zeros(1, 32), ignore_dims=[0])
    leaky = [n for n in graph.nodes.values() if isinstance(n, nir.LIF)]
    assert len(leaky) == 2
    for node in leaky:  # what snnTorch's exporter cannot say, the metadata does
        node.metadata = {"spikeforge_reset": "subtract_unleaked"}
    imported = from_nir(graph)
    assert all(m.params.reset is Reset.SUBTRACT_UNLEAKED
               for m in imported.snn.layers if isinstance(m, LIF))
    with torch.no_grad():
        run = imported.snn.run(spikes)
    assert torch.stack(hidden).sum() > 0 and torch.stack(out).sum() > 0
    assert torch.equal(run.spikes[0], torch.stack(hidden))
    assert torch.equal(run.spikes[1], torch.stack(out))
