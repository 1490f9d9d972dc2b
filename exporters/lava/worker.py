"""``python -m delaydeploy.exporters.lava.worker JOB RESULT``: one worker's share of a Lava run.

:func:`delaydeploy.exporters.lava.graph.simulate_lava` writes ``JOB`` (a pickle of the network, the input
share, the synapse kind and the lane count) into a private temporary folder, starts one such
process per share, and reads each finished frame from its stdout (one line each) for the
progress bar. The worker writes its :class:`~delaydeploy.reference.Simulation` to ``RESULT``.
A process of its own, not a ``multiprocessing`` child: Lava starts processes of its own,
which neither a daemonic pool worker nor a spawned child (re-importing the caller's script)
allows.
"""

from __future__ import annotations

import pickle
import sys

from delaydeploy.exporters.lava.graph import build_lava_graph, run_lava_graph


def main(job_path: str, result_path: str) -> None:
    with open(job_path, "rb") as job_file:
        job = pickle.load(job_file)
    graph = build_lava_graph(job["network"], job["x"], synapse=job["synapse"], lanes=job["lanes"])
    layout = graph.layout
    reported = 0

    def report(steps: int) -> None:
        nonlocal reported
        finished = min(layout.frames, max(0, steps - layout.num_stages) // layout.frame_steps)
        for _ in range(finished - reported):
            print("frame", flush=True)
        reported = finished

    simulation = run_lava_graph(graph, on_chunk=report)
    report(layout.run_steps + layout.frame_steps)
    with open(result_path, "wb") as result_file:
        pickle.dump(simulation, result_file)


if __name__ == "__main__":
    main(*sys.argv[1:])
