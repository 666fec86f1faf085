"""``wardgate kubeconfig`` and ``wardgate kube credential``: the agent's side of the Kubernetes path.

``kubeconfig`` writes a kubeconfig (one cluster, user and context, named after the connection)
that kubectl and client libraries use unchanged. Its server is ``<endpoint>/k8s/<connection>``:
by default wardgate's Kubernetes listener (the TCP gateway, which serves every verb, streaming
ones included), with ``--via lambda`` the HTTP API's route (request/response verbs only). Its
user gets the agent's OIDC token from an exec credential plugin, ``wardgate kube credential``
(``client.authentication.k8s.io/v1``), or from a token file that client-go re-reads.

``kube credential`` prints the ``ExecCredential`` kubectl asks the plugin for: the token read the
way ``wardgate ssh login`` reads it ($WARDGATE_TOKEN or ``--token-file``) and its expiry (the
token's ``exp``), so that client-go asks again when it runs out. Nothing is sent anywhere.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import os
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from wardgate.cli_ssh import TOKEN_ENV, LoginError, read_token

EXEC_API_VERSION = "client.authentication.k8s.io/v1"
# client-go still speaks v1beta1 to plugins configured with it; the answer must match the request.
EXEC_API_VERSIONS = (EXEC_API_VERSION, "client.authentication.k8s.io/v1beta1")
LISTENER_OUTPUT = "KubernetesEndpoint"  # the Fargate listener's https://<nlb>:<port> (template.yaml)
API_OUTPUTS = ("CustomDomainUrl", "ApiUrl")  # the HTTP API, its custom domain first
VIAS = ("listener", "lambda")


class KubeconfigError(Exception):
    """What went wrong, for the agent's terminal."""


# ---------------------------------------------------------------------------------------- credential
def token_expiry(token: str) -> datetime | None:
    """The ``exp`` of a JWT, read without verifying it (the gateway verifies; this only schedules
    the next ask). None when the token carries no readable ``exp``."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        return None
    exp = payload.get("exp") if isinstance(payload, dict) else None
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        return None
    try:
        return datetime.fromtimestamp(exp, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def requested_api_version(exec_info: str | None) -> str:
    """The ExecCredential version client-go asked for in ``KUBERNETES_EXEC_INFO`` (v1 if unsaid)."""
    if not exec_info:
        return EXEC_API_VERSION
    try:
        asked = json.loads(exec_info).get("apiVersion")
    except (ValueError, AttributeError):
        raise LoginError("KUBERNETES_EXEC_INFO is not the JSON client-go sends") from None
    if asked not in EXEC_API_VERSIONS:
        raise LoginError(f"unsupported ExecCredential version {asked!r}: {', '.join(EXEC_API_VERSIONS)}")
    return str(asked)


def exec_credential(token: str, api_version: str, now: datetime | None = None) -> dict[str, Any]:
    """The ExecCredential for ``token``; an expired token is refused here rather than sent."""
    status: dict[str, Any] = {"token": token}
    expiry = token_expiry(token)
    if expiry is not None:
        if expiry <= (now or datetime.now(UTC)):
            raise LoginError(
                f"the token expired at {rfc3339(expiry)}: get a fresh one into ${TOKEN_ENV} or the token file"
            )
        status["expirationTimestamp"] = rfc3339(expiry)
    return {"apiVersion": api_version, "kind": "ExecCredential", "spec": {}, "status": status}


def cmd_kube_credential(args: argparse.Namespace) -> int:
    try:
        token = read_token(args.token_file)
        credential = exec_credential(token, requested_api_version(os.environ.get("KUBERNETES_EXEC_INFO")))
    except LoginError as exc:
        print(f"wardgate: {exc}", file=sys.stderr)  # kubectl shows the plugin's stderr
        return 1
    sys.stdout.write(json.dumps(credential) + "\n")
    return 0


# ---------------------------------------------------------------------------------------- kubeconfig
def plugin_command() -> list[str]:
    """How kubectl runs this plugin: ``wardgate`` when it is on PATH, else this very script by its
    absolute path, else this Python running the CLI module."""
    if shutil.which("wardgate"):
        return ["wardgate"]
    script = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if script is not None and script.name == "wardgate" and script.is_file():
        return [str(script.resolve())]
    return [sys.executable, "-m", "wardgate.cli"]


def endpoint_base(url: str) -> str:
    """An endpoint given with or without its ``/k8s`` suffix, as its origin-and-prefix base."""
    base = url.rstrip("/")
    return base[: -len("/k8s")] if base.endswith("/k8s") else base


def stack_outputs(stack: str) -> dict[str, str]:
    import boto3

    described = boto3.client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]
    return {o["OutputKey"]: str(o["OutputValue"]) for o in described.get("Outputs", [])}


def resolve_endpoint(
    via: str, server: str | None, stack: str | None, ca_file: str | None
) -> tuple[str, str | None]:
    """``(base URL, CA file or None)``: --server, else the stack's outputs, else the running
    ``wardgate dev`` (whose endpoints use the development CA)."""
    if server:
        if not server.startswith("https://"):
            raise KubeconfigError("--server must be an https:// URL: client-go sends no token over http")
        return endpoint_base(server), ca_file
    if stack:
        outputs = stack_outputs(stack)
        if via == "lambda":
            url = next((outputs[name] for name in API_OUTPUTS if outputs.get(name)), None)
            if url is None:
                raise KubeconfigError(f"stack {stack!r} has no ApiUrl output")
            return endpoint_base(url), ca_file
        if not outputs.get(LISTENER_OUTPUT):
            raise KubeconfigError(
                f"stack {stack!r} has no {LISTENER_OUTPUT} output (no Kubernetes listener): "
                "pass --via lambda, or --server https://<listener>:<port>"
            )
        return endpoint_base(outputs[LISTENER_OUTPUT]), ca_file
    from wardgate.dev.stack import read_state

    state = read_state()
    if state is None:
        raise KubeconfigError("no endpoint: pass --stack or --server (no wardgate dev is running here)")
    kubernetes = state.get("kubernetes") or {}
    url = kubernetes.get(f"{via}_url")
    if not url:
        other = "lambda" if via == "listener" else "listener"
        raise KubeconfigError(
            f"the running wardgate dev serves no Kubernetes {via} endpoint: try --via {other}"
        )
    return endpoint_base(str(url)), ca_file or kubernetes.get("ca_file")


def kubeconfig(
    connection: str,
    base_url: str,
    ca_pem: bytes | None,
    user: dict[str, Any],
) -> dict[str, Any]:
    """The kubeconfig document (``v1 Config``): one cluster, one user, one context, all named after
    the connection, and that context current."""
    cluster: dict[str, Any] = {"server": f"{base_url}/k8s/{connection}"}
    if ca_pem is not None:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode("ascii")
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": connection, "cluster": cluster}],
        "users": [{"name": connection, "user": user}],
        "contexts": [{"name": connection, "context": {"cluster": connection, "user": connection}}],
        "current-context": connection,
        "preferences": {},
    }


def exec_user(token_file: str | None) -> dict[str, Any]:
    command, *prefix = plugin_command()
    args = [*prefix, "kube", "credential"]
    if token_file:
        args += ["--token-file", str(Path(token_file).expanduser().absolute())]
    return {
        "exec": {
            "apiVersion": EXEC_API_VERSION,
            "command": command,
            "args": args,
            "interactiveMode": "Never",
            "provideClusterInfo": False,
            "installHint": "wardgate is the gateway's CLI (pip install wardgate); the agent's OIDC token "
            f"goes in ${TOKEN_ENV}" + (" or the token file" if token_file else ""),
        }
    }


def build(args: argparse.Namespace) -> dict[str, Any]:
    from wardgate.connections import NAME_PATTERN

    if not NAME_PATTERN.match(args.connection):
        raise KubeconfigError(f"connection {args.connection!r} must match {NAME_PATTERN.pattern}")
    if args.user_credential == "token-file" and not args.token_file:
        raise KubeconfigError("--user-credential token-file needs --token-file (a file holding the token)")
    base, ca_file = resolve_endpoint(args.via, args.server, args.stack, args.ca_file)
    ca_pem = None
    if ca_file:
        try:
            ca_pem = Path(ca_file).expanduser().read_bytes()
        except OSError as exc:
            raise KubeconfigError(f"cannot read the CA file: {exc}") from None
        if b"-----BEGIN CERTIFICATE-----" not in ca_pem:
            raise KubeconfigError(f"{ca_file} holds no PEM certificate")
    if args.user_credential == "token-file":
        user: dict[str, Any] = {"tokenFile": str(Path(args.token_file).expanduser().absolute())}
    else:
        user = exec_user(args.token_file)
    return kubeconfig(args.connection, base, ca_pem, user)


def write_private(path: Path, text: str, force: bool) -> None:
    """0600 from the start (the file may name a token file and carries the CA); an existing file
    is kept unless ``force``: a kubeconfig is never merged into or overwritten by surprise."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    try:
        descriptor = os.open(path, flags, 0o600)
    except FileExistsError:
        raise KubeconfigError(f"{path} exists: choose another file, or pass --force to replace it") from None
    with os.fdopen(descriptor, "w") as file:
        os.fchmod(descriptor, 0o600)
        file.write(text)


def cmd_kubeconfig(args: argparse.Namespace) -> int:
    import yaml

    try:
        document = build(args)
        text = yaml.safe_dump(document, sort_keys=False, default_flow_style=False)
        if args.output:
            path = Path(args.output).expanduser()
            write_private(path, text, args.force)
            print(
                f"wrote {path}: KUBECONFIG={path} kubectl get pods "
                f"(server {document['clusters'][0]['cluster']['server']})",
                file=sys.stderr,
            )
        else:
            sys.stdout.write(text)
    except (KubeconfigError, LoginError) as exc:
        print(f"wardgate: {exc}", file=sys.stderr)
        return 2
    return 0


def add_commands(sub: Any) -> None:
    config = sub.add_parser(
        "kubeconfig",
        help="print or write a kubeconfig for a Kubernetes connection (kubectl through wardgate)",
        description="The server is <endpoint>/k8s/<connection>: wardgate's Kubernetes listener by "
        "default (every verb: watch, logs -f, exec, port-forward too), or with --via lambda the "
        "HTTP API's route (request/response verbs). docs/kubernetes.md.",
    )
    config.add_argument("--connection", required=True, help="the Kubernetes connection")
    config.add_argument(
        "--via",
        choices=VIAS,
        default="listener",
        help="listener: the TCP gateway's Kubernetes listener (default); lambda: the HTTP API",
    )
    where = config.add_mutually_exclusive_group()
    where.add_argument("--stack", help="read the endpoint from this deployed stack's outputs")
    where.add_argument("--server", help="the endpoint's https:// base URL (/k8s/<connection> is added)")
    config.add_argument(
        "--ca-file", help="PEM CA the endpoint's certificate chains to (default: none; local: the dev CA)"
    )
    config.add_argument(
        "--user-credential",
        choices=("exec", "token-file"),
        default="exec",
        help="exec: kubectl runs `wardgate kube credential` (default); token-file: kubectl reads "
        "--token-file itself",
    )
    config.add_argument("--token-file", help=f"file holding the agent's OIDC token (default: ${TOKEN_ENV})")
    config.add_argument("-o", "--output", help="write the kubeconfig to this file, 0600 (default: stdout)")
    config.add_argument("--force", action="store_true", help="replace the --output file if it exists")
    config.set_defaults(func=cmd_kubeconfig)

    kube = sub.add_parser("kube", help="the agent's Kubernetes helpers")
    kube_sub = kube.add_subparsers(dest="kube_action", required=True)
    credential = kube_sub.add_parser(
        "credential",
        help="print the agent's token as an ExecCredential (kubectl's exec credential plugin)",
    )
    credential.add_argument(
        "--token-file", help=f"file holding the agent's OIDC token (default: ${TOKEN_ENV})"
    )
    credential.set_defaults(func=cmd_kube_credential)
