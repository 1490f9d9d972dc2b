"""PyNN target: the deployment IR as a standalone PyNN script for NEST and SpiNNaker.

* :mod:`delaydeploy.exporters.pynn.model` translates the IR into populations and synapse lists, or
  refuses what ``IF_curr_delta`` cannot compute exactly;
* :mod:`delaydeploy.exporters.pynn.run` is the script a bundle carries as ``run.py`` (numpy, PyNN and
  the simulator only: it never imports delaydeploy);
* :mod:`delaydeploy.exporters.pynn.backend` runs it on NEST for ``simulate``/``verify --backend nest``;
* :mod:`delaydeploy.exporters.pynn.spinnaker` maps it with sPyNNaker on a virtual board and models the
  SpiNNaker weight grid.
"""
