"""`python -m balancer.bench.emulators STEP_TIME DIR PORT:SCALE...`: several
emulated backends in one process (for `bench schedule`), each on its port with
its time scale, no checkpoint load time, files under DIR/<port>. Runs until
terminated."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from balancer.emulate import serve_emulator
from balancer.emulator.options import EmulatorOptions
from balancer.runner import run


async def serve_all(step_time: float, folder: Path, specs: list[str]) -> None:
    serving = []
    for spec in specs:
        port, scale = spec.split(":")
        options = EmulatorOptions(
            name=f"bench-{port}",
            base_dir=folder / port,
            time_scale=float(scale),
            step_time=step_time,
            checkpoint_load_time=0.0,
        )
        serving.append(serve_emulator(options, "127.0.0.1", int(port)))
    await asyncio.gather(*serving)


def main(argv: list[str]) -> None:
    run(serve_all(float(argv[0]), Path(argv[1]), argv[2:]))


if __name__ == "__main__":
    main(sys.argv[1:])
