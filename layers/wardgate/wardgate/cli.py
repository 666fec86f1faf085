"""The ``wardgate`` command: local mode, development tokens, connections and recordings.

Against a running ``wardgate dev`` (found through .wardgate/dev.json) commands act on the
local stack; otherwise on AWS, with table and bucket names from the environment or from a
deployed stack's outputs (``--stack``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any

from wardgate import cli_agents, cli_kube, cli_policy, cli_recordings, cli_ssh
from wardgate.auditing import integrity

STACK_OUTPUTS = {
    "ConnectionsTableName": "CONNECTIONS_TABLE",
    "RecordingsTableName": "RECORDINGS_TABLE",
    "PoliciesTableName": "POLICIES_TABLE",
    "RecordingsBucketName": "RECORDINGS_BUCKET",
    "RecordingsStreamName": "RECORDINGS_STREAM",
    "AgentsTableName": "AGENTS_TABLE",
    "ScimTokenSecretArn": "SCIM_TOKEN_SECRET",
    "AuditWorkGroupName": cli_recordings.AUDIT_WORKGROUP,
    "AuditDatabaseName": cli_recordings.AUDIT_DATABASE,
    "RecordingManifestKeyArn": "RECORDINGS_MANIFEST_KEY",  # recordings verify: kms:GetPublicKey
}


def _parse_claim(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--claim takes key=value, got {text!r}")
    try:
        return key, json.loads(raw)
    except ValueError:
        return key, raw


def cmd_dev(args: argparse.Namespace) -> int:
    from moto.server import ThreadedMotoServer

    from wardgate.dev.stack import DevStack, find_project_root, quick_start, state_dir

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-call access log drowns the console
    root = find_project_root()
    moto_server = ThreadedMotoServer(ip_address="127.0.0.1", port=args.aws_port, verbose=False)
    moto_server.start()
    stack = DevStack(
        root=root,
        state_dir=state_dir(root),
        port=args.port,
        upstream_port=args.upstream_port,
        pg_port=args.pg_port,
        mysql_port=args.mysql_port,
        ssh_port=args.ssh_port,
        kube_listener_port=args.kube_listener_port,
        https_port=args.https_port,
        kube_port=args.kube_port,
        aws_endpoint=f"http://127.0.0.1:{args.aws_port}",
    )
    try:
        stack.start()
        stack.write_state()
        print(quick_start(stack), flush=True)
        # SIGTERM as Ctrl-C: a handler that takes no lock (one setting an Event could deadlock on
        # the lock the main thread holds while it waits on that Event).
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                # Short sleeps: a signal the kernel hands to another of the many threads only runs
                # its handler once the main thread is back in Python (a fresh-clone run saw a
                # SIGTERM wait out a whole hour's sleep).
                time.sleep(0.5)
    finally:
        stack.stop()
        moto_server.stop()
    return 0


def cmd_serve_tcp(args: argparse.Namespace) -> int:
    from wardgate.tcp.server import serve_tcp

    return serve_tcp()


def cmd_token(args: argparse.Namespace) -> int:
    from wardgate.dev.oidc import ISSUER_PATH, DevIssuer
    from wardgate.dev.stack import find_project_root, read_state, state_dir

    root = find_project_root()
    state = read_state(root)
    base = args.issuer_url or (state["url"] if state else "http://127.0.0.1:8700")
    issuer = DevIssuer(base.rstrip("/") + ISSUER_PATH, state_dir(root) / "dev-issuer-key.pem")
    claims = dict(args.claim or [])
    print(issuer.mint(args.sub, args.group or [], audience=args.aud, ttl=args.ttl, claims=claims))
    return 0


def target(args: argparse.Namespace) -> None:
    """Point boto3 and the table names at the local stack or at AWS."""
    from wardgate.dev.stack import FAKE_AWS_ENV, read_state

    state = None if getattr(args, "stack", None) else read_state()
    if state is not None:
        os.environ.update(FAKE_AWS_ENV)
        os.environ.update(state["env"])
        if state.get("aws_endpoint"):
            os.environ["AWS_ENDPOINT_URL"] = state["aws_endpoint"]
        print(f"(local wardgate dev at {state['url']})", file=sys.stderr)
        return
    if getattr(args, "stack", None):
        import boto3

        outputs = boto3.client("cloudformation").describe_stacks(StackName=args.stack)["Stacks"][0]["Outputs"]
        for output in outputs:
            if output["OutputKey"] in STACK_OUTPUTS:
                os.environ[STACK_OUTPUTS[output["OutputKey"]]] = output["OutputValue"]


def _store() -> Any:
    from wardgate.config import Settings
    from wardgate.connections import ConnectionStore

    return ConnectionStore(Settings.from_env().connections_table)


def cmd_connections_ls(args: argparse.Namespace) -> int:
    target(args)
    for connection in _store().all():
        print(json.dumps(connection.to_dict()))
    return 0


def cmd_connections_put(args: argparse.Namespace) -> int:
    from wardgate.connections import Connection

    target(args)
    try:
        connection = Connection(
            name=args.name,
            kind=args.kind,
            upstream_url=args.upstream,
            credential_secret=args.secret,
            allowed_groups=tuple(args.group or ()),
            description=args.description,
            host_key=args.host_key,
        )
    except ValueError as exc:
        print(f"wardgate: {exc}", file=sys.stderr)
        return 2
    _store().put(connection)
    print(json.dumps(connection.to_dict()))
    return 0


def cmd_connections_rm(args: argparse.Namespace) -> int:
    target(args)
    _store().delete(args.name)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wardgate", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    dev = sub.add_parser("dev", help="run wardgate locally (moto, development issuer, demo upstream)")
    dev.add_argument("--port", type=int, default=8700)
    dev.add_argument("--upstream-port", type=int, default=8701)
    dev.add_argument("--aws-port", type=int, default=8702)
    dev.add_argument("--pg-port", type=int, default=15432, help="the TCP gateway's PostgreSQL port")
    dev.add_argument("--mysql-port", type=int, default=13306, help="the TCP gateway's MySQL port")
    dev.add_argument("--ssh-port", type=int, default=12222, help="the TCP gateway's SSH port")
    dev.add_argument(
        "--kube-listener-port", type=int, default=16443, help="the TCP gateway's Kubernetes (HTTPS) port"
    )
    dev.add_argument("--https-port", type=int, default=8743, help="every route over HTTPS (the dev CA)")
    # 8702 is moto's (--aws-port): the cluster double behind demo-k8s takes the next free number.
    dev.add_argument("--kube-port", type=int, default=8703, help="the cluster double behind demo-k8s")
    dev.set_defaults(func=cmd_dev)

    serve = sub.add_parser(
        "serve-tcp",
        help="run the TCP gateway (PostgreSQL) until SIGTERM: the Fargate task's process",
        description="Listeners from WARDGATE_TCP_LISTENERS, the certificate from WARDGATE_TCP_TLS_SECRET "
        "(or WARDGATE_TCP_TLS_CERT/_KEY files), the stores from the same variables as the functions "
        "(docs/tcp-gateway.md).",
    )
    serve.set_defaults(func=cmd_serve_tcp)

    token = sub.add_parser("token", help="print a token from the development issuer")
    token.add_argument("--sub", required=True, help="subject (the agent or person)")
    token.add_argument("--group", action="append", help="group claim; repeat for several")
    token.add_argument("--aud", default="wardgate", help="audience (default: wardgate)")
    token.add_argument("--ttl", type=int, default=900, help="lifetime in seconds (default: 900)")
    token.add_argument(
        "--claim", action="append", type=_parse_claim, help="k=v, overrides any claim (JSON values)"
    )
    token.add_argument("--issuer-url", help="base URL of the dev server (default: the running one)")
    token.set_defaults(func=cmd_token)

    connections = sub.add_parser("connections", help="list, add and remove connections")
    csub = connections.add_subparsers(dest="action", required=True)
    csub.add_parser("ls").set_defaults(func=cmd_connections_ls)
    put = csub.add_parser("put", help="create or replace a connection")
    put.add_argument("--name", required=True)
    put.add_argument("--kind", default="http")
    put.add_argument("--upstream", required=True, help="upstream base URL")
    put.add_argument("--secret", help="Secrets Manager name or ARN of the backend credential")
    put.add_argument("--group", action="append", help="group allowed to use it; repeat for several")
    put.add_argument("--description", default="")
    put.add_argument("--host-key", default="", help="ssh: the target's host key (key line or SHA256:...)")
    put.set_defaults(func=cmd_connections_put)
    rm = csub.add_parser("rm")
    rm.add_argument("name")
    rm.set_defaults(func=cmd_connections_rm)

    def with_stack(command: argparse.ArgumentParser) -> None:
        command.add_argument("--stack", help="read table and bucket names from this deployed stack's outputs")

    for p in (put, rm, csub.choices["ls"]):
        with_stack(p)
    cli_policy.add_commands(sub, with_stack)
    cli_agents.add_commands(sub, with_stack)
    cli_ssh.add_commands(sub)
    cli_kube.add_commands(sub)
    integrity.add_verify_command(cli_recordings.add_commands(sub, with_stack), with_stack)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from botocore.exceptions import BotoCoreError, ClientError

    from wardgate.errors import GatewayError

    try:
        return int(args.func(args))
    except FileNotFoundError as exc:
        print(f"wardgate: {exc}", file=sys.stderr)
        return 2
    except GatewayError as exc:
        print(f"wardgate: {exc.message}", file=sys.stderr)
        return 1
    except (BotoCoreError, ClientError) as exc:  # AWS said no: say what, without a traceback
        print(f"wardgate: AWS request failed: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
