"""The command line: its spelled-out choices agree with the modules that implement them."""

from __future__ import annotations

from delaydeploy import cli, verify


def test_backend_choices_are_the_verify_backends():
    assert cli.BACKENDS == verify.BACKENDS
    parser = cli.build_parser()
    for command in ("simulate", "verify"):
        extra = ["-o", "out.npz"] if command == "simulate" else []
        assert parser.parse_args([command, "model.pt", "--backend", "lava-cpu", *extra]).backend == "lava-cpu"
