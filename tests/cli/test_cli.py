"""The command line as a new operator meets it, run as a subprocess."""

from __future__ import annotations

import argparse
import json
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from balancer import __version__
from balancer.cli import build_parser
from balancer.demo import demo_sockets

EXAMPLE_CONFIG = Path(__file__).resolve().parents[2] / "config" / "balancer.yaml"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "balancer", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port something else listens on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def in_use(port: int) -> str:
    return f"port {port} is in use (another ComfyUI or balancer?); use --port\n"


def test_serve_on_a_taken_port_fails_at_once_with_one_line(taken_port: int) -> None:
    done = cli("serve", "--config", str(EXAMPLE_CONFIG), "--port", str(taken_port))
    assert (done.returncode, done.stderr, done.stdout) == (2, in_use(taken_port), "")


def test_demo_on_a_taken_port_fails_at_once_with_one_line(taken_port: int) -> None:
    done = cli("demo", "--port", str(taken_port))
    assert (done.returncode, done.stderr, done.stdout) == (2, in_use(taken_port), "")


def test_emulate_on_a_taken_port_fails_at_once_with_one_line(taken_port: int) -> None:
    done = cli("emulate", "--port", str(taken_port))
    assert (done.returncode, done.stderr) == (2, in_use(taken_port))


def test_demo_without_port_moves_past_a_taken_default_and_says_so(taken_port: int) -> None:
    sockets, note = demo_sockets("127.0.0.1", None, default=taken_port)
    try:
        chosen = sockets[0].getsockname()[1]
        assert chosen != taken_port
        assert note == f"port {taken_port} is in use; using {chosen}"
    finally:
        for sock in sockets:
            sock.close()


def test_version() -> None:
    done = cli("--version")
    assert (done.returncode, done.stdout) == (0, f"comfyui-balancer {__version__}\n")


def _parsers(parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield parser.prog, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                yield from _parsers(child)


def test_every_option_of_every_command_has_help_with_its_default() -> None:
    missing, no_default = [], []
    for prog, parser in _parsers(build_parser()):
        for action in parser._actions:
            skip = (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)
            if isinstance(action, skip):
                continue
            name = action.option_strings[-1] if action.option_strings else action.dest
            shown = " ".join(parser._get_formatter()._format_action(action).split())
            if not action.help:
                missing.append(f"{prog} {name}")
            elif action.option_strings and "(default: " not in shown:
                no_default.append(f"{prog} {name}")
    assert missing == []
    assert no_default == []


def test_serve_help_names_the_default_config() -> None:
    done = cli("serve", "--help")
    assert done.returncode == 0
    shown = "(default: $BALANCER_CONFIG, else config/balancer.yaml)"
    assert shown in " ".join(done.stdout.split())


# A process started in the background of a shell inherits SIGINT ignored;
# Ctrl-C (SIGINT) must stop emulate either way, whatever started pytest.
@pytest.mark.parametrize("inherited", [signal.SIG_DFL, signal.SIG_IGN], ids=["default", "ignored"])
def test_emulate_says_what_it_serves_and_stops_on_ctrl_c(
    tmp_path: Path, inherited: signal.Handlers
) -> None:
    # port 0: the emulator binds a free port itself and says which (a port
    # chosen here could be taken by another process before it starts)
    command = [sys.executable, "-m", "balancer", "emulate", "--port", "0"]
    command += ["--base-dir", str(tmp_path), "--vram-total", "16GiB", "--checkpoints", "a,b"]
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, inherited),
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        before = "emulated ComfyUI 0.3.64 'emulator' on http://127.0.0.1:"
        after = ": 16GiB VRAM, time scale 1, checkpoints a, b\n"
        assert first.startswith(before) and first.endswith(after), first
        port = int(first[len(before) : -len(after)])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/system_stats", timeout=10) as r:
            assert json.load(r)["devices"][0]["vram_total"] == 16 * 1024**3
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()  # never leave a server behind for the tests after this one
            proc.communicate()
            raise
    assert proc.returncode == 0
    assert "Traceback" not in err
