"""PyNN target: the deployment IR as a standalone script for NEST and SpiNNaker (through PyNN) and Brian 2.

* :mod:`delaydeploy.exporters.pynn.model` translates the IR into populations and synapse lists, or
  refuses what ``IF_curr_delta`` cannot compute exactly;
* :mod:`delaydeploy.exporters.pynn.run` is the script a bundle carries as ``run.py`` (numpy and the
  simulator only: it never imports delaydeploy);
* :mod:`delaydeploy.exporters.pynn.backend` runs it on NEST or Brian 2 for ``simulate``/``verify
  --backend nest|brian2``;
* :mod:`delaydeploy.exporters.pynn.spinnaker` maps it with sPyNNaker on a virtual board and models the
  SpiNNaker weight grid.
"""
