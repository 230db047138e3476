"""Command line: options from argparse, and serving an emulator until cancelled."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from pathlib import Path

from balancer.helpformat import DefaultsHelp
from balancer.runner import ListenError, start

from .app import create_emulator_app
from .catalog import MODEL_FOLDERS
from .options import DEFAULT_CHECKPOINTS, EmulatorOptions, format_size, parse_size


def add_emulator_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of one emulator. Sizes are strings so `--help` shows `24GiB`;
    argparse runs string defaults through `type`."""
    defaults = EmulatorOptions()
    add = parser.add_argument
    add("--name", default=defaults.name, help="its name in /system_stats and logs")
    add(
        "--base-dir",
        type=Path,
        default=None,
        help="root of its input/ output/ temp/ user/ (default: a new temporary directory)",
    )
    add(
        "--time-scale",
        type=float,
        default=defaults.time_scale,
        help="multiplies every emulated duration: 0 runs jobs instantly, 2 twice as slow",
    )
    add("--step-time", type=float, default=defaults.step_time, help="seconds per sampler step")
    add(
        "--model-load-time",
        "--checkpoint-load-time",
        dest="checkpoint_load_time",
        type=float,
        default=defaults.checkpoint_load_time,
        help="seconds to load a model (checkpoint, LoRA, VAE, ...) that is not resident",
    )
    add(
        "--model-slots",
        type=int,
        default=defaults.model_slots,
        help="models resident in VRAM at once (the least recently used is evicted)",
    )
    add("--vram-total", type=parse_size, default=format_size(defaults.vram_total), help="VRAM")
    add(
        "--vram-base-used",
        type=parse_size,
        default=format_size(defaults.vram_base_used),
        help="VRAM used with no model loaded",
    )
    add(
        "--vram-per-checkpoint",
        type=parse_size,
        default=format_size(defaults.vram_per_checkpoint),
        help="VRAM a loaded checkpoint adds",
    )
    add(
        "--checkpoints",
        default=",".join(DEFAULT_CHECKPOINTS),
        help="comma-separated checkpoint names it offers",
    )
    add("--without-nodes", default="", help="comma-separated node classes it lacks")
    add("--extra-nodes", default="", help="comma-separated custom node classes it adds")
    add(
        "--models",
        action="append",
        type=parse_models,
        default=[],
        metavar="FOLDER=a,b",
        help="model files of one folder (repeatable): --models loras=x.safetensors",
    )


def names(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


def parse_models(text: str) -> tuple[str, tuple[str, ...]]:
    """`folder=a,b` -> ("folder", ("a", "b"))."""
    folder, sep, listed = text.partition("=")
    if not sep or folder.strip() not in MODEL_FOLDERS:
        raise argparse.ArgumentTypeError(f"expected FOLDER=a,b with a known folder: {text!r}")
    return folder.strip(), names(listed)


def options_from_args(args: argparse.Namespace) -> EmulatorOptions:
    return EmulatorOptions(
        name=args.name,
        base_dir=args.base_dir,
        time_scale=args.time_scale,
        vram_total=args.vram_total,
        vram_base_used=args.vram_base_used,
        vram_per_checkpoint=args.vram_per_checkpoint,
        checkpoints=names(args.checkpoints),
        checkpoint_load_time=args.checkpoint_load_time,
        step_time=args.step_time,
        model_slots=args.model_slots,
        without_nodes=frozenset(names(args.without_nodes)),
        extra_nodes=names(args.extra_nodes),
        models=dict(args.models),
    )


def describe(options: EmulatorOptions, url: str) -> str:
    """What `emulate` prints when it is up: where, and what it pretends to be."""
    return (
        f"emulated ComfyUI 0.3.64 {options.name!r} on {url}:"
        f" {format_size(options.vram_total)} VRAM, time scale {options.time_scale:g},"
        f" checkpoints {', '.join(options.checkpoints) or '(none)'}"
    )


async def serve_emulator(options: EmulatorOptions, host: str, port: int) -> None:
    """Serve until cancelled; a taken port raises ListenError before anything starts."""
    running = await start(create_emulator_app(options), host, port)
    try:
        print(describe(options, running.url), flush=True)
        await asyncio.Event().wait()
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="A ComfyUI 0.3.64 emulator", formatter_class=DefaultsHelp
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8188, help="port to listen on")
    add_emulator_arguments(parser)
    return run_emulator(parser.parse_args(argv))
