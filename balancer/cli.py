"""`comfyui-balancer`: serve, demo, emulate, check-config, bench."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from dataclasses import replace

from balancer.config.model import ListenSettings, LogSettings, Settings


def _serve(args: argparse.Namespace) -> int:
    from balancer.app import create_app, open_store
    from balancer.config import ConfigError, load_settings
    from balancer.logs import configure_logging, get_logger
    from balancer.runner import run, start, stop_all, wait_for_stop
    from balancer.store.sqlite import StoreInUse

    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print("\n".join(exc.errors), file=sys.stderr)
        return 1
    listen = ListenSettings(
        host=args.host or settings.listen.host, port=args.port or settings.listen.port
    )
    settings = replace(settings, listen=listen)
    configure_logging(settings.log)
    from balancer.auth.setup import anonymous_refusal, is_loopback_host

    refused = anonymous_refusal(settings, listen.host)
    if refused is not None:
        print(refused, file=sys.stderr)
        return 1
    if not settings.auth.keys and not is_loopback_host(listen.host):
        get_logger("balancer").warning("anonymous_access", host=listen.host)
    try:
        store = open_store(settings)
    except StoreInUse as exc:
        print(exc, file=sys.stderr)
        return 1

    async def main() -> None:
        app = create_app(settings, config_path=args.config, store=store)
        running = await start(app, listen.host, listen.port, settings.shutdown.timeout)
        get_logger("balancer").info(
            "listening", url=running.url, backends=[b.name for b in settings.backends]
        )
        try:
            await wait_for_stop()
        finally:
            await stop_all([running])

    run(main())
    return 0


def _demo(args: argparse.Namespace) -> int:
    from balancer.demo import run_demo
    from balancer.logs import configure_logging

    configure_logging(LogSettings(level="info"))
    from balancer.runner import run

    run(run_demo(args.host, args.port, args.backends))
    return 0


def _emulate(args: argparse.Namespace) -> int:
    from balancer.emulator import options_from_args, serve_emulator

    asyncio.run(serve_emulator(options_from_args(args), args.host, args.port))
    return 0


def _check_config(args: argparse.Namespace) -> int:
    from balancer.config import check_config

    code, text = check_config(args.file)
    print(text, file=sys.stdout if code == 0 else sys.stderr)
    return code


def _bench(args: argparse.Namespace) -> int:
    from balancer.bench import run_bench

    return run_bench(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="comfyui-balancer", description="One URL in front of many ComfyUI backends."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the balancer in front of the backends in a file")
    serve.add_argument("--config", default="config/balancer.yaml")
    serve.add_argument("--host", default=None, help="overrides listen.host")
    serve.add_argument("--port", type=int, default=None, help="overrides listen.port")
    serve.set_defaults(func=_serve)

    demo = sub.add_parser("demo", help="the balancer in front of emulated backends (no GPU)")
    demo.add_argument("--host", default=Settings().listen.host)
    demo.add_argument("--port", type=int, default=Settings().listen.port)
    demo.add_argument("--backends", type=int, default=3)
    demo.set_defaults(func=_demo)

    emulate = sub.add_parser("emulate", help="run one emulated ComfyUI backend")
    emulate.add_argument("--host", default="127.0.0.1")
    emulate.add_argument("--port", type=int, default=8189)
    from balancer.emulator import add_emulator_arguments

    add_emulator_arguments(emulate)
    emulate.set_defaults(func=_emulate)

    check = sub.add_parser("check-config", help="validate a config file")
    check.add_argument("file")
    check.set_defaults(func=_check_config)

    bench = sub.add_parser("bench", help="benchmarks that print a table")
    from balancer.bench import add_bench_arguments

    add_bench_arguments(bench)
    bench.set_defaults(func=_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
