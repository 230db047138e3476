"""Command line: the emulator's options from argparse. The balancer's
`emulate` command (balancer/emulate.py) serves it; `python -m
balancer.emulator` runs it on aiohttp's own runner."""

from __future__ import annotations

import argparse
from pathlib import Path

from aiohttp import web

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
    add(
        "--object-info-cost",
        type=float,
        default=defaults.object_info_cost,
        help="seconds each GET /object_info blocks the event loop, as ComfyUI building it"
        " (default: 0, none)",
    )
    add(
        "--slow-path",
        action="append",
        default=[],
        metavar="PATH",
        help="a GET path that holds the event loop as long as --object-info-cost (repeatable)",
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
        object_info_cost=args.object_info_cost,
        slow_paths=frozenset(args.slow_path),
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


def main(argv: list[str] | None = None) -> int:
    """`python -m balancer.emulator`: aiohttp's own runner, nothing of the balancer's."""
    parser = argparse.ArgumentParser(description="A ComfyUI 0.3.64 emulator")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8188, help="port to listen on")
    add_emulator_arguments(parser)
    args = parser.parse_args(argv)
    options = options_from_args(args)
    url = f"http://{args.host}:{args.port}"
    web.run_app(
        create_emulator_app(options),
        host=args.host,
        port=args.port,
        print=lambda _: print(describe(options, url), flush=True),
    )
    return 0
