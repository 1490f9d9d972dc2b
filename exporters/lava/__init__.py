"""Lava target (lava-nc 0.10.0, the ``lava`` extra, Python 3.10): the IR or its Loihi 2 integer
form as a Lava process graph, run on Lava's CPU backend.

* :mod:`delaydeploy.exporters.lava.graph` builds the graph and runs it on the reference's time axis;
* :mod:`delaydeploy.exporters.lava.processes` holds our processes and their tagged models;
* :mod:`delaydeploy.exporters.lava.env` imports Lava safely, and says what to install where it is missing.

This file imports nothing, so that ``delaydeploy.exporters.lava.env`` loads where Lava is absent.
"""
