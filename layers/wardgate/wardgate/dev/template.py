"""Reads template.yaml so that local mode serves the routes, environment and resources it declares.

The template is the single source of truth: routes are not listed twice, and the tables,
bucket and stream that moto emulates are created from their declarations.
"""

from __future__ import annotations

import copy
import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

try:  # libyaml's scanner and parser: template.yaml loads in ~20 ms, not ~150 ms (every DevStack)
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # a PyYAML built without libyaml: the same documents, in pure Python
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]

ACCOUNT = "123456789012"
REGION = "us-east-1"


class _CfnLoader(_SafeLoader):
    """A YAML loader that understands CloudFormation's short-form intrinsic functions (!Ref, !Sub...)."""


def _intrinsic(loader: yaml.constructor.SafeConstructor, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


@functools.lru_cache(maxsize=4)
def _parse(text: str) -> dict[str, Any]:
    """template.yaml as read from ``text``, parsed once per process (every DevStack reads it)."""
    doc: dict[str, Any] = yaml.load(text, Loader=_CfnLoader)  # noqa: S506 (SafeLoader subclass)
    return doc


@dataclass(frozen=True)
class Route:
    method: str  # "ANY" or an HTTP method
    path: str  # API Gateway path template, e.g. /http/{connection}/{proxy+}
    function: str  # logical id
    code_dir: Path
    handler: str  # "module.function"

    @property
    def route_key(self) -> str:
        return f"{self.method} {self.path}"

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """Path parameters when ``path`` (decoded) fits this route, else None."""
        if self.method not in ("ANY", method):
            return None
        want, have = self.path.strip("/").split("/"), path.strip("/").split("/")
        params: dict[str, str] = {}
        for i, part in enumerate(want):
            if part.startswith("{") and part.endswith("+}"):
                rest = "/".join(have[i:])
                if not rest:
                    return None
                params[part[1:-2]] = rest
                return params
            if i >= len(have):
                return None
            if part.startswith("{") and part.endswith("}"):
                if not have[i]:
                    return None
                params[part[1:-1]] = have[i]
            elif part != have[i]:
                return None
        return params if len(have) == len(want) else None

    @property
    def specificity(self) -> tuple[int, int, int]:
        """API Gateway prefers literal segments over parameters, and parameters over greedy ones."""
        parts = self.path.strip("/").split("/")
        greedy = sum(p.endswith("+}") for p in parts)
        params = sum(p.startswith("{") for p in parts) - greedy
        return (-greedy, len(parts) - params - greedy, -params)


class Template:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.root = path.parent
        self.doc: dict[str, Any] = copy.deepcopy(_parse(path.read_text()))  # each Template its own
        self.resources: dict[str, dict[str, Any]] = self.doc.get("Resources", {})

    def routes(self) -> list[Route]:
        globals_fn = self.doc.get("Globals", {}).get("Function", {})
        found = []
        for logical_id, resource in self.resources.items():
            if resource.get("Type") != "AWS::Serverless::Function":
                continue
            props = {**globals_fn, **resource.get("Properties", {})}
            for event in (props.get("Events") or {}).values():
                if event.get("Type") == "HttpApi":
                    found.append(
                        Route(
                            method=str(event["Properties"].get("Method", "ANY"))
                            .upper()
                            .replace("X-AMAZON-APIGATEWAY-ANY-METHOD", "ANY"),
                            path=event["Properties"]["Path"],
                            function=logical_id,
                            code_dir=self.root / props["CodeUri"],
                            handler=props["Handler"],
                        )
                    )
        return sorted(found, key=lambda r: r.specificity, reverse=True)

    def local_name(self, logical_id: str) -> str:
        return "wardgate-" + logical_id.lower()

    def resolve(self, value: Any, parameters: dict[str, str]) -> Any:
        """Evaluate the intrinsic functions local mode needs (Ref, GetAtt .Arn/.Name, Sub)."""
        if isinstance(value, dict) and len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                if arg in parameters:
                    return parameters[arg]
                if arg in self.doc.get("Parameters", {}):
                    return str(self.doc["Parameters"][arg].get("Default", ""))
                kind = self.resources.get(arg, {}).get("Type")
                if kind == "AWS::SQS::Queue":  # Ref of a queue is its URL
                    return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{self.local_name(arg)}"
                if kind == "AWS::Serverless::StateMachine":  # ... of a state machine its ARN
                    return f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{self.local_name(arg)}"
                return {"AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::Partition": "aws"}.get(
                    arg, self.local_name(arg)
                )
            if key == "Fn::GetAtt":
                return self._arn(arg[0]) if arg[1] == "Arn" else self.local_name(arg[0])
            if key == "Fn::Sub" and isinstance(arg, str):
                out = arg
                for name in (
                    list(parameters)
                    + list(self.resources)
                    + ["AWS::Region", "AWS::AccountId", "AWS::Partition"]
                ):
                    out = out.replace("${" + name + "}", str(self.resolve({"Ref": name}, parameters)))
                return out
        return value

    def _arn(self, logical_id: str) -> str:
        kind = self.resources[logical_id]["Type"]
        name = self.local_name(logical_id)
        if kind == "AWS::S3::Bucket":
            return f"arn:aws:s3:::{name}"
        if kind == "AWS::DynamoDB::Table":
            return f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}"
        if kind == "AWS::KinesisFirehose::DeliveryStream":
            return f"arn:aws:firehose:{REGION}:{ACCOUNT}:deliverystream/{name}"
        if kind == "AWS::SQS::Queue":
            return f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"
        return f"arn:aws:iam::{ACCOUNT}:role/{name}"

    def function_environment(self, function: str, parameters: dict[str, str]) -> dict[str, str]:
        merged = {
            **self.doc.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {}),
            **self.resources[function].get("Properties", {}).get("Environment", {}).get("Variables", {}),
        }
        return {k: str(self.resolve(v, parameters)) for k, v in merged.items()}

    def provision(self) -> None:
        """Create the template's tables, buckets and delivery streams in the (moto) AWS in reach."""
        from wardgate.aws import client

        for logical_id, resource in self.resources.items():
            props = resource.get("Properties", {})
            name = self.local_name(logical_id)
            if resource["Type"] == "AWS::DynamoDB::Table":
                client("dynamodb").create_table(
                    TableName=name,
                    KeySchema=props["KeySchema"],
                    AttributeDefinitions=props["AttributeDefinitions"],
                    BillingMode=props.get("BillingMode", "PAY_PER_REQUEST"),
                )
            elif resource["Type"] == "AWS::S3::Bucket":
                client("s3").create_bucket(Bucket=name)
            elif resource["Type"] == "AWS::SQS::Queue":
                client("sqs").create_queue(QueueName=name)
            elif resource["Type"] == "AWS::SecretsManager::Secret" and "GenerateSecretString" in props:
                import secrets

                client("secretsmanager").create_secret(Name=name, SecretString=secrets.token_urlsafe(36))
        for logical_id, resource in self.resources.items():  # streams deliver to buckets made above
            if resource["Type"] == "AWS::KinesisFirehose::DeliveryStream":
                dest = resource["Properties"]["ExtendedS3DestinationConfiguration"]
                client("firehose").create_delivery_stream(
                    DeliveryStreamName=self.local_name(logical_id),
                    DeliveryStreamType="DirectPut",
                    ExtendedS3DestinationConfiguration={
                        "RoleARN": f"arn:aws:iam::{ACCOUNT}:role/firehose",
                        "BucketARN": self.resolve(dest["BucketARN"], {}),
                        "Prefix": dest.get("Prefix", ""),
                        "CompressionFormat": dest.get("CompressionFormat", "UNCOMPRESSED"),
                    },
                )
            elif resource["Type"] == "AWS::Serverless::StateMachine":  # queues and tables exist by now
                client("stepfunctions").create_state_machine(
                    name=self.local_name(logical_id),
                    definition=self.state_machine_definition(logical_id),
                    roleArn=f"arn:aws:iam::{ACCOUNT}:role/{self.local_name(logical_id)}",
                )

    def state_machine_definition(self, logical_id: str) -> str:
        """The definition file with its ``DefinitionSubstitutions`` applied, as Step Functions gets it."""
        props = self.resources[logical_id]["Properties"]
        definition: str = (self.root / props["DefinitionUri"]).read_text()
        for key, value in (props.get("DefinitionSubstitutions") or {}).items():
            definition = definition.replace("${" + key + "}", str(self.resolve(value, {})))
        return definition


def issuers_parameter(*issuer_configs: dict[str, Any]) -> str:
    return json.dumps(list(issuer_configs))
