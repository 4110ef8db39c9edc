"""The DSE from Python: build a study in code, run it, read the Pareto front.

A random search over weight bits, membrane bits and time steps of a small
digits network (scikit-learn's 8x8 digits, a 64-16-10 LIF MLP), with accuracy
of the bit-exact QNet against hardware-aware energy, and a constraint that the
quantized network keep at least 70 % accuracy. Runs in about a minute on two
cores::

    .venv/bin/python examples/dse/api_example.py [--out out/dse-api] [--workers 2]
        [--cluster tcp://HOST:8786]

Running it again resumes from ``OUT/points.jsonl`` and evaluates nothing twice.
"""

from __future__ import annotations

import argparse

from spikeforge.dse import run_study, study_from_dict

STUDY = {
    "name": "digits_api",
    "seed": 3,
    "base": {"dataset": "digits", "train_samples": 0, "test_samples": 0, "hidden": [16],
             "epochs": 3, "batch_size": 64, "copies": 2, "mesh_rows": 2, "mesh_cols": 2},
    "parameters": {
        "weight_bits": {"low": 2, "high": 8},
        "membrane_bits": {"choices": [10, 12, 16]},
        "timesteps": {"choices": [2, 4, 6]},
    },
    "objectives": {"accuracy": "max", "energy_hw_pj": "min"},
    "constraints": [{"metric": "accuracy", "min": 0.7}],
    "record": ["float_accuracy", "memory_bits"],
    "search": {"method": "random", "budget": 12, "batch": 6},
}


def main() -> None:
    ap = argparse.ArgumentParser(description="DSE through the Python API")
    ap.add_argument("--out", default="out/dse-api")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--cluster", default=None, help="Dask scheduler address")
    args = ap.parse_args()

    study = study_from_dict(STUDY, source="api_example.py")
    res = run_study(study, args.out, workers=args.workers, cluster=args.cluster)
    print(f"{res.evaluated} points evaluated, {res.reused} reused, {res.wall_s:.1f} s "
          f"on {res.executor}")
    print("Pareto front (accuracy max, energy_hw_pj min):")
    for r in sorted(res.pareto, key=lambda r: -r["accuracy"]):
        print(f"  weight_bits={r['weight_bits']} membrane_bits={r['membrane_bits']} "
              f"timesteps={r['timesteps']}: accuracy {r['accuracy']:.3f}, "
              f"{r['energy_hw_pj']:.0f} pJ/sample")
    infeasible = [r for r in res.rows if r["status"] != "ok"]
    for r in infeasible:
        print(f"  {r['status']}: weight_bits={r['weight_bits']} "
              f"membrane_bits={r['membrane_bits']} timesteps={r['timesteps']}: {r['message']}")
    print(f"results: {res.files['results']}")


if __name__ == "__main__":
    main()
