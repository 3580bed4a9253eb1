"""CyberBill Studio entry point.

    python main.py                      # the app on http://127.0.0.1:7860
    python main.py --port 8000 --listen --auth user:pass
    python main.py run <kind> --params p.json   # any job kind, headless, same engine
"""
from __future__ import annotations

import argparse
import json
import sys


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="cyberbill", description="CyberBill Studio")
    p.add_argument("--port", type=int, default=None, help="port (default: config PORT, 7860)")
    p.add_argument("--listen", action="store_true", help="listen on all interfaces (0.0.0.0)")
    p.add_argument("--share", action="store_true", help="create a public Gradio share link")
    p.add_argument("--auth", default=None, help="user:password required to open the studio")
    p.add_argument("--home", default=None, help="folder for data/models/outputs (default: here)")
    sub = p.add_subparsers(dest="command")
    run = sub.add_parser("run", help="run one job kind headless")
    run.add_argument("kind")
    run.add_argument("--params", default=None, help="JSON file (or inline JSON) with the params")
    sub.add_parser("kinds", help="list job kinds and their params schema")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from core.context import build_context
    from core.errors import StudioError

    try:
        ctx = build_context(args.home)
    except StudioError as exc:  # another instance holds this data folder: say so, touch nothing
        from core.i18n import Translator, resolve_language

        print(exc.render(Translator(resolve_language(None))), file=sys.stderr)
        return 2
    if args.command == "kinds":
        for name, kind in sorted(ctx.jobs.kinds.items()):
            print(name, json.dumps(kind.params.model_json_schema().get("properties", {})))
        ctx.close()
        return 0
    if args.command == "run":
        from core.cli import run_job_foreground, read_params

        return run_job_foreground(ctx, args.kind, read_params(args.params))
    from core.shell import launch

    host, port, auth = server_options(args, ctx.config)
    if not port_is_free(host, port):
        print(ctx.t("shell.port_busy", host=host, port=port), file=sys.stderr)
        ctx.close()
        return 2
    launch(ctx, host=host, port=port, share=args.share, auth=auth)
    return 0


def port_is_free(host: str, port: int) -> bool:
    """True when nothing listens on host:port (checked before Gradio, which would print a traceback)."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def server_options(args: argparse.Namespace, config) -> tuple[str, int, tuple[str, str] | None]:
    """(host, port, auth): 127.0.0.1 unless --listen (or a HOST setting); auth from user:pass."""
    auth = None
    if args.auth:
        user, sep, password = args.auth.partition(":")
        if not (user and sep and password):  # "user" alone would give Gradio a broken 1-tuple
            raise SystemExit("--auth must be user:password")
        auth = (user, password)
    host = "0.0.0.0" if args.listen else str(config.get("HOST", "127.0.0.1"))
    return host, args.port or int(config.get("PORT", 7860)), auth


if __name__ == "__main__":
    sys.exit(main())
