"""`comfyui-balancer emulate`: one emulated ComfyUI served on the balancer's
runner (the port is bound before anything starts, so a taken port fails at
once). The emulator itself imports nothing of the balancer; this is the side
that imports it."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys

from balancer.emulator import EmulatorOptions, create_emulator_app
from balancer.emulator.cli import describe, options_from_args
from balancer.runner import ListenError, start, stop_signals


async def serve_emulator(options: EmulatorOptions, host: str, port: int) -> None:
    """Serve until SIGINT or SIGTERM (the loop's own signal handlers, as
    `serve` uses); a taken port raises ListenError before anything starts."""
    running = await start(create_emulator_app(options), host, port)
    try:
        with stop_signals() as stop:  # before the banner: a Ctrl-C right after it stops us
            print(describe(options, running.url), flush=True)
            await stop.wait()
    finally:
        await running.runner.cleanup()


def run_emulator(args: argparse.Namespace) -> int:
    """Serve the emulator the parsed options describe until Ctrl-C or SIGTERM;
    exit code 2 when its port cannot be used."""
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve_emulator(options_from_args(args), args.host, args.port))
    except ListenError as exc:
        print(exc, file=sys.stderr)
        return 2
    return 0
