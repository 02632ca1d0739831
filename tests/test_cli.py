"""The ``m31clusters`` command line, through subprocess as a user runs it."""

import subprocess
import sys

import pytest

from m31clusters.cli import SUBCOMMANDS, build_parser, main


def _cli(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "m31clusters", *args], capture_output=True,
                          text=True, **kwargs)


def test_help_lists_every_subcommand():
    out = _cli("--help")
    assert out.returncode == 0
    for name in SUBCOMMANDS:
        assert name in out.stdout


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_help_of_each_subcommand(name):
    out = _cli(name, "--help")
    assert out.returncode == 0, out.stderr
    assert f"usage: m31clusters {name}" in out.stdout
    assert "--debug" in out.stdout and "--quiet" in out.stdout


def test_no_subcommand_is_a_usage_error():
    out = _cli()
    assert out.returncode == 2
    assert "usage: m31clusters" in out.stderr


def test_unknown_option_is_a_usage_error():
    out = _cli("demo", "--no-such-option")
    assert out.returncode == 2
    assert "unrecognized arguments: --no-such-option" in out.stderr


def test_error_is_one_line_and_debug_shows_traceback(tmp_path):
    args = ("demo", "--out", str(tmp_path / "out"), "--images", str(tmp_path / "g.fits"),
            str(tmp_path / "i.fits"), "--quiet")
    out = _cli(*args)
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("m31clusters demo: error: ")
    assert "g.fits" in lines[0]
    assert not (tmp_path / "out").exists()  # nothing written for a bad argument
    out = _cli(*args, "--debug")
    assert out.returncode == 1
    assert "Traceback (most recent call last)" in out.stderr


def test_console_script_entry_point():
    from importlib.metadata import entry_points

    (ep,) = [e for e in entry_points(group="console_scripts") if e.name == "m31clusters"]
    assert ep.value == "m31clusters.cli:main"
    assert ep.load() is main


def test_parser_registers_run_for_each_subcommand():
    parser = build_parser()
    for name in SUBCOMMANDS:
        args = parser.parse_args([name])
        assert callable(args.run) and args.quiet is False and args.debug is False
