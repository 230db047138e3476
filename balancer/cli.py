"""`comfyui-balancer`: serve, demo, emulate, check-config, bench."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import replace

from balancer import __version__
from balancer.config.server_settings import ListenSettings, LogSettings
from balancer.config.settings import Settings
from balancer.helpformat import DefaultsHelp


def _serve(args: argparse.Namespace) -> int:
    from redis.exceptions import RedisError

    from balancer.app import create_app
    from balancer.config import ConfigError, load_settings
    from balancer.connguard import ConnectionLimits
    from balancer.logs import configure_logging, get_logger
    from balancer.redact import redact
    from balancer.runner import ListenError, bind, run, serve_on, stop_all, wait_for_stop
    from balancer.store import StoreUnavailable
    from balancer.store.open import close_store, open_store
    from balancer.store.redis import RedisStore
    from balancer.store.sqlite_file import StoreInUse, StoreUnusable

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
        sockets = bind(listen.host, listen.port)
    except ListenError as exc:
        print(exc, file=sys.stderr)
        return 2
    try:
        store = open_store(settings)
    except (StoreInUse, StoreUnusable) as exc:
        print(exc, file=sys.stderr)
        return 1

    async def main() -> None:
        # On Redis, this balancer is one of the replicas that share it.
        shared = store.client if isinstance(store, RedisStore) else None
        app = create_app(settings, config_path=args.config, store=store, redis=shared)
        limits = ConnectionLimits(
            settings.limits.header_timeout, settings.limits.max_connections_per_peer
        )
        running = await serve_on(app, listen.host, sockets, settings.shutdown.timeout, limits)
        get_logger("balancer").info(
            "listening", url=running.url, backends=[b.name for b in settings.backends]
        )
        try:
            await wait_for_stop()
        finally:
            await stop_all([running])
            await close_store(store)

    try:
        run(main())
    except (StoreUnavailable, RedisError) as exc:  # at start: joining, restoring jobs
        detail = str(exc) if isinstance(exc, StoreUnavailable) else f"redis: {exc}"
        print(f"the store does not answer: {redact(detail)}", file=sys.stderr)
        return 1
    return 0


def _demo(args: argparse.Namespace) -> int:
    from balancer.demo import demo_sockets, run_demo
    from balancer.logs import configure_logging
    from balancer.runner import ListenError, run

    try:
        sockets, note = demo_sockets(args.host, args.port)
    except ListenError as exc:
        print(exc, file=sys.stderr)
        return 2
    if note:
        print(note, flush=True)
    configure_logging(LogSettings(level="info"))
    run(run_demo(args.host, sockets, args.backends, args.mixed))
    return 0


def _emulate(args: argparse.Namespace) -> int:
    from balancer.emulate import run_emulator

    return run_emulator(args)


def _healthcheck(args: argparse.Namespace) -> int:
    from balancer.healthcheck import healthcheck

    code, text = healthcheck(args.config)
    print(text, file=sys.stdout if code == 0 else sys.stderr)
    return code


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
        prog="comfyui-balancer",
        description="One URL in front of many ComfyUI backends.",
        formatter_class=DefaultsHelp,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=help, formatter_class=DefaultsHelp)

    def config_option(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--config",
            default=os.environ.get("BALANCER_CONFIG") or "config/balancer.yaml",
            help="the YAML config file (default: $BALANCER_CONFIG, else config/balancer.yaml)",
        )

    serve = command("serve", "run the balancer in front of the backends in a config file")
    config_option(serve)
    serve.add_argument("--host", default=None, help="address to listen on (default: listen.host)")
    serve.add_argument(
        "--port", type=int, default=None, help="port to listen on (default: listen.port)"
    )
    serve.set_defaults(func=_serve)

    demo = command("demo", "the balancer in front of emulated backends (no GPU, no network)")
    default = Settings().listen
    demo.add_argument("--host", default=default.host, help="address the balancer listens on")
    demo.add_argument(
        "--port",
        type=int,
        default=None,
        help=f"port the balancer listens on (default: {default.port}, or the next free one)",
    )
    demo.add_argument("--backends", type=int, default=3, help="how many emulated backends")
    demo.add_argument(
        "--mixed",
        action="store_true",
        help="4 uneven backends (own models, node sets, 2 models in VRAM) and model_affinity"
        " (default: off)",
    )
    demo.set_defaults(func=_demo)

    emulate = command("emulate", "run one emulated ComfyUI backend")
    emulate.add_argument("--host", default="127.0.0.1", help="address to listen on")
    emulate.add_argument("--port", type=int, default=8189, help="port to listen on")
    from balancer.emulator import add_emulator_arguments

    add_emulator_arguments(emulate)
    emulate.set_defaults(func=_emulate)

    health = command(
        "healthcheck",
        "exit 0 when the balancer of a config file answers /balancer/ready with 200, else 1",
    )
    config_option(health)
    health.set_defaults(func=_healthcheck)

    check = command("check-config", "validate a config file: every error, or a summary")
    check.add_argument("file", help="the YAML config file")
    check.set_defaults(func=_check_config)

    bench = command("bench", "benchmarks that print a table")
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
