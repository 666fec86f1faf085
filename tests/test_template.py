"""template.yaml's TCP gateway (Fargate + NLB), checked against its contract.

`sam validate --lint` checks the resources are valid CloudFormation; these tests check they
are the right ones: optional, wired to the same stores as the functions, no more permissions
than the proxy functions have, and ports and health checks that agree with the Dockerfile.
"""

from __future__ import annotations

import fnmatch
import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.test_tcp_image import DOCKERFILE, exec_form, final_stage, parse_dockerfile
from wardgate.dev.template import Template
from wardgate.tcp.config import TcpSettings
from wardgate.tcp.server import SERVERS, SESSIONS

ROOT = Path(__file__).resolve().parent.parent
TCP_TYPES = ("AWS::ECS::", "AWS::ElasticLoadBalancingV2::", "AWS::ApplicationAutoScaling::", "AWS::EC2::")
# Each listener of the task: protocol, container port (Mappings TcpGateway/Ports), target group,
# NLB listener, the port parameter agents connect to and its default.
LISTENERS = (
    ("postgres", "Postgres", "TcpGatewayTargetGroup", "TcpGatewayPostgresListener", "PostgresPort", 5432),
    ("mysql", "MySql", "TcpGatewayMySqlTargetGroup", "TcpGatewayMySqlListener", "MySqlPort", 3306),
    ("ssh", "Ssh", "TcpGatewaySshTargetGroup", "TcpGatewaySshListener", "SshPort", 22),
    (
        "kubernetes",
        "Kubernetes",
        "TcpGatewayKubernetesTargetGroup",
        "TcpGatewayKubernetesListener",
        "KubernetesPort",
        443,
    ),
)


@pytest.fixture(scope="module")
def template() -> Template:
    return Template(ROOT / "template.yaml")


def resource(template: Template, logical_id: str) -> dict[str, Any]:
    return template.resources[logical_id]


def props(template: Template, logical_id: str) -> dict[str, Any]:
    return resource(template, logical_id)["Properties"]


def mapped(template: Template, value: Any) -> Any:
    """Fn::FindInMap against the template's Mappings (other values unchanged)."""
    if isinstance(value, dict) and "Fn::FindInMap" in value:
        name, top, second = value["Fn::FindInMap"]
        return template.doc["Mappings"][name][top][second]
    return value


def container(template: Template) -> dict[str, Any]:
    (only,) = props(template, "TcpGatewayTaskDefinition")["ContainerDefinitions"]
    return only


def environment(template: Template) -> dict[str, Any]:
    return {item["Name"]: item["Value"] for item in container(template)["Environment"]}


def test_the_tcp_gateway_is_optional_and_all_of_it_hangs_on_one_condition(template):
    tcp = {k for k, r in template.resources.items() if r["Type"].startswith(TCP_TYPES)}
    named = {k for k in template.resources if k.startswith("TcpGateway")}
    assert tcp <= named, f"TCP gateway resources outside the TcpGateway* names: {tcp - named}"
    for logical_id in named:
        assert resource(template, logical_id).get("Condition") == "HasTcpGateway", logical_id
    for output in (
        "TcpGatewayDnsName",
        "TcpGatewayPostgresPort",
        "TcpGatewayMySqlPort",
        "TcpGatewaySshPort",
        "TcpGatewaySshEndpoint",
        "TcpGatewayKubernetesPort",
        "KubernetesEndpoint",
    ):
        assert template.doc["Outputs"][output]["Condition"] == "HasTcpGateway"
    for *_, parameter, _ in LISTENERS:  # each listener's port is an output, as agents connect to it
        assert {"Ref": parameter} in [output["Value"] for output in template.doc["Outputs"].values()]
    parameters = template.doc["Parameters"]
    for name in ("ImageUri", "VpcId", "SubnetIds", "TcpTlsSecretArn"):
        assert parameters[name]["Default"] == "", f"{name} must default to empty: no VPC, no TCP gateway"
    # ... and the condition asks for all four, so none of them is a half-configured gateway.
    condition = json.dumps(template.doc["Conditions"]["HasTcpGateway"])
    for name in ("ImageUri", "VpcId", "SubnetIds", "TcpTlsSecretArn"):
        assert f'"Ref": "{name}"' in condition, name


def test_the_task_gets_the_functions_stores_by_the_same_names(template):
    shared = template.doc["Globals"]["Function"]["Environment"]["Variables"]
    env = environment(template)
    deliberate = {"WARDGATE_TRACING": "PassThrough"}  # no X-Ray daemon beside the task
    for name, value in shared.items():
        assert name in env, f"{name} (Globals) is missing from the TCP gateway's environment"
        assert env[name] == deliberate.get(name, value), name
    proxy = props(template, "HttpProxyFunction")["Environment"]["Variables"]
    assert env["APPROVAL_STATE_MACHINE"] == proxy["APPROVAL_STATE_MACHINE"]
    notifier = props(template, "ApprovalNotifierFunction")["Environment"]["Variables"]
    assert env["WARDGATE_PUBLIC_URL"] == notifier["WARDGATE_PUBLIC_URL"]
    assert env["WARDGATE_TCP_TLS_SECRET"] == {"Ref": "TcpTlsSecretArn"}
    assert "APPROVAL_KEY_SECRET" not in env, "the gateway holds operations; it never signs approvals"


def statements(policy_holder: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for policy in policy_holder.get("Policies", []):
        document = policy.get("PolicyDocument", policy)
        for statement in document.get("Statement", []):
            if "Fn::If" in statement:  # [condition, statement, AWS::NoValue]
                statement = statement["Fn::If"][1]
            found.append(statement)
    return found


def grants(statement_list: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    """(action, resource, condition) triples of the Allow statements, comparable across resources."""
    out = set()
    for st in statement_list:
        assert st["Effect"] == "Allow"
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
        for action in actions:
            for res in resources:
                out.add(
                    (action, json.dumps(res, sort_keys=True), json.dumps(st.get("Condition"), sort_keys=True))
                )
    return out


SSH_HOST_KEY_SECRET = {
    "Fn::Sub": "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:"
    "${SshHostKeySecretName}-??????"
}


def test_the_task_role_grants_nothing_the_proxy_functions_lack(template):
    task = grants(statements(props(template, "TcpGatewayTaskRole")))
    functions = grants(statements(props(template, "HttpProxyFunction"))) | grants(
        statements(props(template, "SqlProxyFunction"))
    )
    own = {
        ("secretsmanager:GetSecretValue", json.dumps({"Ref": "TcpTlsSecretArn"}), "null"),
        ("secretsmanager:GetSecretValue", json.dumps(SSH_HOST_KEY_SECRET, sort_keys=True), "null"),
        ("rds-db:connect", json.dumps({"Ref": "TcpIamDbAuthResources"}), "null"),
    }
    extra = task - functions - own
    assert not extra, f"the TCP gateway's role grants more than the proxy functions: {sorted(extra)}"
    text = json.dumps(props(template, "TcpGatewayTaskRole"))
    for secret in ("ApprovalKeySecret", "ScimTokenSecret", "TransactionKeySecret"):
        assert secret not in text, secret
    assert '"*"' not in text and "rds-data:" not in text


def test_iam_database_auth_is_granted_only_when_asked_for(template):
    (conditional,) = [
        st
        for policy in props(template, "TcpGatewayTaskRole")["Policies"]
        for st in policy["PolicyDocument"]["Statement"]
        if "Fn::If" in st
    ]
    condition, statement, otherwise = conditional["Fn::If"]
    assert condition == "HasTcpIamDbAuth" and otherwise == {"Ref": "AWS::NoValue"}
    assert statement["Action"] == "rds-db:connect"


def test_the_execution_role_pulls_and_logs_only(template):
    actions = {action for action, _, _ in grants(statements(props(template, "TcpGatewayExecutionRole")))}
    assert actions == {
        "ecr:GetAuthorizationToken",
        "ecr:BatchCheckLayerAvailability",
        "ecr:BatchGetImage",
        "ecr:GetDownloadUrlForLayer",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
    }


def test_fargate_arm64_with_the_logs_retention_used_elsewhere(template):
    task = props(template, "TcpGatewayTaskDefinition")
    assert task["RequiresCompatibilities"] == ["FARGATE"] and task["NetworkMode"] == "awsvpc"
    assert task["RuntimePlatform"] == {"CpuArchitecture": "ARM64", "OperatingSystemFamily": "LINUX"}
    assert task["Cpu"] == {"Ref": "TcpTaskCpu"} and task["Memory"] == {"Ref": "TcpTaskMemory"}
    logs = container(template)["LogConfiguration"]
    assert logs["LogDriver"] == "awslogs" and logs["Options"]["awslogs-group"] == {
        "Ref": "TcpGatewayLogGroup"
    }
    retention = {
        r["Properties"]["RetentionInDays"]
        for k, r in template.resources.items()
        if r["Type"] == "AWS::Logs::LogGroup" and k != "TcpGatewayLogGroup"
    }
    assert {props(template, "TcpGatewayLogGroup")["RetentionInDays"]} == retention
    parameters = template.doc["Parameters"]
    assert (parameters["TcpTaskCpu"]["Default"], parameters["TcpTaskMemory"]["Default"]) == ("256", "512")


def test_ports_and_health_checks_agree_with_the_dockerfile(template):
    dockerfile = parse_dockerfile(DOCKERFILE.read_text())
    final = final_stage(dockerfile)
    exposed = {int(p) for i in final if i.keyword == "EXPOSE" for p in i.args.split()}
    ports = template.doc["Mappings"]["TcpGateway"]["Ports"]
    mappings = {int(mapped(template, m["ContainerPort"])) for m in container(template)["PortMappings"]}
    assert mappings == exposed == {*(ports[key] for _, key, *_ in LISTENERS), ports["Health"]}
    for _, key, *_ in LISTENERS:
        assert ports[key] >= 1024, "the task's user is not root: it cannot bind a port below 1024"

    env = environment(template)
    listeners_template, variables = env["WARDGATE_TCP_LISTENERS"]["Fn::Sub"]
    listeners = json.loads(
        re.sub(r"\$\{(\w+)\}", lambda m: str(mapped(template, variables[m.group(1)])), listeners_template)
    )
    assert listeners == [{"protocol": protocol, "port": ports[key]} for protocol, key, *_ in LISTENERS]
    # ...and the gateway reads that setting as it stands and has a session for each protocol.
    served = TcpSettings.from_env({"WARDGATE_TCP_LISTENERS": json.dumps(listeners)}).listeners
    assert [(listener.protocol, listener.port) for listener in served] == [
        (protocol, ports[key]) for protocol, key, *_ in LISTENERS
    ]
    assert {listener.protocol for listener in served} <= set(SESSIONS) | set(SERVERS)
    assert int(mapped(template, env["WARDGATE_TCP_HEALTH_PORT"])) == ports["Health"]

    healthcheck = next(i.args for i in final if i.keyword == "HEALTHCHECK").partition("CMD ")[2]
    assert container(template)["HealthCheck"]["Command"] == ["CMD", *exec_form(healthcheck)]


@pytest.mark.parametrize(
    ("protocol", "key", "group_id", "listener_id", "parameter", "default"), LISTENERS, ids=lambda v: str(v)
)
def test_each_listener_has_its_nlb_listener_target_group_and_service_entry(
    template, protocol, key, group_id, listener_id, parameter, default
):
    ports = template.doc["Mappings"]["TcpGateway"]["Ports"]
    group = props(template, group_id)
    assert (group["TargetType"], group["Protocol"]) == ("ip", "TCP")
    assert int(mapped(template, group["Port"])) == ports[key]
    assert (group["HealthCheckProtocol"], group["HealthCheckPath"]) == ("HTTP", "/healthz")
    assert int(mapped(template, group["HealthCheckPort"])) == ports["Health"]
    # Health checks, drain and client-address handling are the same for every listener.
    first = props(template, LISTENERS[0][2])
    for setting in (
        "HealthCheckIntervalSeconds",
        "HealthyThresholdCount",
        "UnhealthyThresholdCount",
        "VpcId",
    ):
        assert group[setting] == first[setting], setting
    assert group["TargetGroupAttributes"] == [
        {"Key": a["Key"], "Value": a["Value"]} for a in first["TargetGroupAttributes"]
    ]

    listener = props(template, listener_id)
    assert listener["Protocol"] == "TCP", f"TLS is wardgate's, inside the {protocol} protocol"
    assert listener["Port"] == {"Ref": parameter}
    assert listener["LoadBalancerArn"] == {"Ref": "TcpGatewayLoadBalancer"}
    assert listener["DefaultActions"] == [{"Type": "forward", "TargetGroupArn": {"Ref": group_id}}]
    assert {"Key": "tcp.idle_timeout.seconds", "Value": "3600"} in listener["ListenerAttributes"]
    assert template.doc["Parameters"][parameter]["Default"] == default

    service = resource(template, "TcpGatewayService")
    assert listener_id in service["DependsOn"], "the target group must belong to the NLB before the service"
    balanced = [b for b in service["Properties"]["LoadBalancers"] if b["TargetGroupArn"] == {"Ref": group_id}]
    assert len(balanced) == 1, f"{group_id}: one LoadBalancers entry of the service"
    assert int(mapped(template, balanced[0]["ContainerPort"])) == ports[key]
    assert balanced[0]["ContainerName"] == container(template)["Name"]


def test_the_listeners_cannot_share_a_port(template):
    assertions = template.doc["Rules"]["TcpGatewayListenersNeedTheirOwnPorts"]["Assertions"]
    refused = {frozenset(ref["Ref"] for ref in a["Assert"]["Fn::Not"][0]["Fn::Equals"]) for a in assertions}
    parameters = [parameter for *_, parameter, _ in LISTENERS]
    pairs = {frozenset((a, b)) for i, a in enumerate(parameters) for b in parameters[i + 1 :]}
    assert refused == pairs, "every two listeners' ports must be refused as equal"
    assert len(props(template, "TcpGatewayService")["LoadBalancers"]) == len(LISTENERS)


def test_only_the_load_balancer_reaches_the_tasks(template):
    ingress = [
        r["Properties"] for r in template.resources.values() if r["Type"] == "AWS::EC2::SecurityGroupIngress"
    ]
    ports = template.doc["Mappings"]["TcpGateway"]["Ports"]
    assert {int(mapped(template, rule["FromPort"])) for rule in ingress} == set(ports.values())
    for rule in ingress:
        assert rule["GroupId"] == {"Fn::GetAtt": ["TcpGatewayTaskSecurityGroup", "GroupId"]}
        assert not {"CidrIp", "CidrIpv6", "SourcePrefixListId"} & set(rule), rule
        assert rule["SourceSecurityGroupId"] == {
            "Fn::GetAtt": ["TcpGatewayLoadBalancerSecurityGroup", "GroupId"]
        }
    assert "SecurityGroupIngress" not in props(template, "TcpGatewayTaskSecurityGroup")
    balancer = props(template, "TcpGatewayLoadBalancerSecurityGroup")
    clients = balancer["SecurityGroupIngress"]
    assert [(rule["FromPort"], rule["ToPort"]) for rule in clients] == [
        ({"Ref": parameter}, {"Ref": parameter}) for *_, parameter, _ in LISTENERS
    ]
    assert all(rule["CidrIp"] == {"Ref": "AllowedClientCidr"} for rule in clients)
    # The load balancer reaches the tasks on their listeners' ports and the health port, nothing else.
    egress = balancer["SecurityGroupEgress"]
    assert {int(mapped(template, rule["FromPort"])) for rule in egress} == set(ports.values())
    for rule in egress:
        assert rule["FromPort"] == rule["ToPort"]
        assert rule["DestinationSecurityGroupId"] == {
            "Fn::GetAtt": ["TcpGatewayTaskSecurityGroup", "GroupId"]
        }


def test_the_service_rolls_back_and_scales_on_cpu_and_sessions(template):
    service = props(template, "TcpGatewayService")
    assert service["DeploymentConfiguration"]["DeploymentCircuitBreaker"] == {
        "Enable": True,
        "Rollback": True,
    }
    assert service["DesiredCount"] == {"Ref": "TcpDesiredCount"}
    assert service["NetworkConfiguration"]["AwsvpcConfiguration"]["Subnets"] == {"Ref": "SubnetIds"}
    target = props(template, "TcpGatewayScalableTarget")
    assert target["MinCapacity"] == {"Ref": "TcpDesiredCount"} and target["MaxCapacity"] == {
        "Ref": "TcpMaxCount"
    }
    policies = {
        k: p["Properties"]["TargetTrackingScalingPolicyConfiguration"]
        for k, p in template.resources.items()
        if p["Type"] == "AWS::ApplicationAutoScaling::ScalingPolicy"
    }
    cpu = policies["TcpGatewayCpuScaling"]
    assert cpu["PredefinedMetricSpecification"]["PredefinedMetricType"] == "ECSServiceAverageCPUUtilization"
    assert cpu["TargetValue"] == 60
    sessions = policies["TcpGatewaySessionScaling"]["CustomizedMetricSpecification"]
    assert (sessions["Namespace"], sessions["MetricName"], sessions["Statistic"]) == (
        "wardgate",
        "ActiveSessions",
        "Average",
    )
    # EMF metrics match on their exact dimension set: the task must publish Service alone.
    assert sessions["Dimensions"] == [{"Name": "Service", "Value": {"Ref": "AWS::StackName"}}]
    assert environment(template)["WARDGATE_METRICS_SERVICE"] == {"Ref": "AWS::StackName"}


def test_the_cluster_has_container_insights(template):
    settings = props(template, "TcpGatewayCluster")["ClusterSettings"]
    assert {"Name": "containerInsights", "Value": "enabled"} in settings


def test_every_variable_the_task_gets_is_one_wardgate_reads(template):
    """A variable renamed on either side (template or package) fails here, not in a task."""
    package = "\n".join(p.read_text() for p in (ROOT / "layers/wardgate/wardgate").rglob("*.py"))
    read_elsewhere = {"AWS_DEFAULT_REGION"}  # boto3's; POWERTOOLS_* are Powertools'
    for name in environment(template):
        if name.startswith("POWERTOOLS_") or name in read_elsewhere:
            continue
        assert f'"{name}"' in package, (
            f"{name}: set for the TCP gateway, read nowhere in the wardgate package"
        )


# ---------------------------------------------------------------- audit queries (Athena, issue 14)


def test_the_recordings_table_is_projected_by_arrival_hour_over_the_recordings_prefix(template):
    from wardgate.auditing import schema

    table = props(template, "RecordingsGlueTable")["TableInput"]
    assert table["Name"] == schema.RAW_TABLE
    assert table["PartitionKeys"][0]["Name"] == schema.PARTITION
    assert table["StorageDescriptor"]["Columns"] == [
        {**column, "Comment": table["StorageDescriptor"]["Columns"][0]["Comment"]}
        for column in schema.glue_columns()
    ]
    parameters = table["Parameters"]
    assert parameters["projection.enabled"] == "true"
    assert parameters[f"projection.{schema.PARTITION}.format"] == "yyyy/MM/dd/HH"  # Firehose's UTC prefix
    assert parameters[f"projection.{schema.PARTITION}.interval.unit"] == "HOURS"
    assert parameters[f"projection.{schema.PARTITION}.range"] == {
        "Fn::Sub": "NOW-${RecordingRetentionDays}DAYS,NOW"
    }
    # The table reads what the stream writes, and nothing beside it (errors, manifests).
    stream = props(template, "RecordingsStream")["ExtendedS3DestinationConfiguration"]
    location = table["StorageDescriptor"]["Location"]["Fn::Sub"]
    assert location == "s3://${RecordingsBucket}/" + stream["Prefix"]
    assert parameters["storage.location.template"]["Fn::Sub"] == location + "${!arrival_hour}/"
    assert not stream["ErrorOutputPrefix"].startswith(stream["Prefix"])
    assert table["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"].endswith("LazySimpleSerDe")


def test_the_audit_workgroup_enforces_its_results_and_a_scan_limit(template):
    config = props(template, "AuditWorkGroup")["WorkGroupConfiguration"]
    assert config["EnforceWorkGroupConfiguration"] is True
    assert config["BytesScannedCutoffPerQuery"] == {"Ref": "AuditBytesScannedCutoff"}
    assert config["ResultConfiguration"]["OutputLocation"] == {
        "Fn::Sub": "s3://${AuditQueryResultsBucket}/results/"
    }
    assert config["ResultConfiguration"]["EncryptionConfiguration"]["EncryptionOption"] == "SSE_S3"
    results = props(template, "AuditQueryResultsBucket")
    assert results["PublicAccessBlockConfiguration"] == dict.fromkeys(
        ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"), True
    )
    assert results["LifecycleConfiguration"]["Rules"][0]["ExpirationInDays"] <= 7
    outputs = template.doc["Outputs"]
    from wardgate.cli import STACK_OUTPUTS

    for output in ("AuditWorkGroupName", "AuditDatabaseName"):
        assert output in outputs and output in STACK_OUTPUTS  # --stack finds them


def test_named_queries_are_the_clis_questions(template):
    """Each AWS::Athena::NamedQuery is the text wardgate/auditing/questions.py generates, and parses."""
    import sqlglot

    from wardgate.auditing.questions import athena_named_queries

    named = {k: r for k, r in template.resources.items() if r["Type"] == "AWS::Athena::NamedQuery"}
    expected = athena_named_queries()
    assert set(named) == {f"AuditQuery{suffix}" for suffix in expected}
    for suffix, (description, text) in expected.items():
        query = named[f"AuditQuery{suffix}"]["Properties"]
        assert query["QueryString"] == text, f"AuditQuery{suffix} is out of step with questions.py"
        assert query["Description"] == description
        assert query["Database"] == {"Ref": "RecordingsGlueDatabase"} and query["WorkGroup"] == {
            "Ref": "AuditWorkGroup"
        }
        assert len(sqlglot.parse(text, read="athena")) == 1
    for question in (
        "ByAgent",
        "ByOwner",
        "ByConnection",
        "Denials",
        "Approvals",
        "TouchingTable",
        "Revocations",
    ):
        assert question in expected


def test_the_auditor_policy_reads_and_queries_and_writes_nothing_else(template):
    statements = props(template, "AuditorPolicy")["PolicyDocument"]["Statement"]
    actions = {
        a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }
    assert all(s["Effect"] == "Allow" and s["Resource"] != "*" for s in statements)
    writes = {a for a in actions if a.split(":")[1].startswith(("Put", "Delete", "Update", "Create"))}
    assert writes == {"s3:PutObject"}  # Athena's results, in the results bucket only
    (results,) = [s for s in statements if "s3:PutObject" in s["Action"]]
    assert json.dumps(results["Resource"]).count("AuditQueryResultsBucket") == 2
    assert "s3:GetObject" in actions and "athena:StartQueryExecution" in actions


# ---------------------------------------------------------------- tamper-evident recordings (issue 14)


def _actions(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return [action] if isinstance(action, str) else list(action)


def _grants(statement: dict[str, Any], action: str) -> bool:
    """Whether a statement's action patterns (kms:Get*, kms:*) cover ``action``."""
    return any(fnmatch.fnmatchcase(action, pattern) for pattern in _actions(statement))


def test_recordings_are_write_once_and_encrypted_with_their_own_key(template):
    bucket = props(template, "RecordingsBucket")
    assert bucket["VersioningConfiguration"]["Status"] == "Enabled"  # Object Lock needs versions
    assert bucket["ObjectLockEnabled"] is True
    lock = bucket["ObjectLockConfiguration"]
    assert lock["ObjectLockEnabled"] == "Enabled"
    assert lock["Rule"]["DefaultRetention"] == {
        "Mode": {"Ref": "RecordingLockMode"},
        "Days": {"Ref": "RecordingRetentionDays"},  # the lock lasts as long as the recordings are kept
    }
    mode = template.doc["Parameters"]["RecordingLockMode"]
    assert mode["Default"] == "GOVERNANCE" and mode["AllowedValues"] == ["GOVERNANCE", "COMPLIANCE"]
    (rule,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "aws:kms",
        "KMSMasterKeyID": {"Fn::GetAtt": ["RecordingsKey", "Arn"]},
    }
    assert rule["BucketKeyEnabled"] is True
    assert props(template, "RecordingsKey")["EnableKeyRotation"] is True
    assert resource(template, "RecordingsKey")["DeletionPolicy"] == "Retain"
    # The stream writes SSE-KMS objects: data keys from the recordings key, through S3 only.
    (policy,) = props(template, "RecordingsStreamRole")["Policies"]
    (kms,) = [s for s in policy["PolicyDocument"]["Statement"] if _grants(s, "kms:GenerateDataKey")]
    assert kms["Resource"] == {"Fn::GetAtt": ["RecordingsKey", "Arn"]}
    assert "kms:ViaService" in kms["Condition"]["StringEquals"]


def test_only_the_stream_writes_recordings_and_only_the_signer_writes_manifests(template):
    statements = props(template, "RecordingsBucketPolicy")["PolicyDocument"]["Statement"]
    denies = {s["Sid"]: s for s in statements if s["Effect"] == "Deny" and s["Action"] == "s3:PutObject"}
    writers = {
        json.dumps(s["Resource"]): s["Condition"]["ArnNotEquals"]["aws:PrincipalArn"]["Fn::GetAtt"][0]
        for s in denies.values()
    }
    assert writers == {
        json.dumps({"Fn::Sub": "${RecordingsBucket.Arn}/recordings/*"}): "RecordingsStreamRole",
        json.dumps({"Fn::Sub": "${RecordingsBucket.Arn}/manifests/*"}): "RecordingManifestSignerRole",
    }


def test_only_the_signer_can_sign_manifests_and_the_account_can_verify_them(template):
    key = props(template, "RecordingManifestKey")
    assert (key["KeySpec"], key["KeyUsage"]) == ("ECC_NIST_P256", "SIGN_VERIFY")
    statements = key["KeyPolicy"]["Statement"]
    assert all(s["Effect"] == "Allow" for s in statements)
    (signer,) = [s for s in statements if _grants(s, "kms:Sign")]  # nobody else, not even via IAM
    assert signer["Principal"] == {"AWS": {"Fn::GetAtt": ["RecordingManifestSignerRole", "Arn"]}}
    assert _actions(signer) == ["kms:Sign"]
    root = [s for s in statements if "root" in json.dumps(s["Principal"])]
    assert root and not any(_grants(s, "kms:Sign") for s in root)
    assert any(_grants(s, "kms:GetPublicKey") and _grants(s, "kms:Verify") for s in root)
    # The function runs as that role, with that key, on the bucket's Object Created events.
    function = props(template, "RecordingManifestFunction")
    assert function["Role"] == {"Fn::GetAtt": ["RecordingManifestSignerRole", "Arn"]}
    assert function["Environment"]["Variables"]["RECORDINGS_MANIFEST_KEY"] == {
        "Fn::GetAtt": ["RecordingManifestKey", "Arn"]
    }
    (event,) = function["Events"].values()
    assert event["Type"] == "EventBridgeRule"
    pattern = event["Properties"]["Pattern"]
    assert pattern["detail-type"] == ["Object Created"]
    assert pattern["detail"]["bucket"]["name"] == [{"Ref": "RecordingsBucket"}]
    assert pattern["detail"]["object"]["key"] == [{"prefix": "recordings/"}]  # not manifests/: no loop
    assert props(template, "RecordingsBucket")["NotificationConfiguration"] == {
        "EventBridgeConfiguration": {"EventBridgeEnabled": True}
    }
    assert function["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]["Destination"] == {
        "Fn::GetAtt": ["RecordingManifestFailures", "Arn"]
    }
    # Its role reads recordings and writes manifests, and nothing else in the bucket.
    (policy,) = props(template, "RecordingManifestSignerRole")["Policies"]
    s3 = [s for s in policy["PolicyDocument"]["Statement"] if any(a.startswith("s3:") for a in _actions(s))]
    granted = {(a, json.dumps(s["Resource"])) for s in s3 for a in _actions(s)}
    assert granted == {
        ("s3:GetObject", json.dumps({"Fn::Sub": "${RecordingsBucket.Arn}/recordings/*"})),
        ("s3:GetObjectVersion", json.dumps({"Fn::Sub": "${RecordingsBucket.Arn}/recordings/*"})),
        ("s3:PutObject", json.dumps({"Fn::Sub": "${RecordingsBucket.Arn}/manifests/*"})),
        ("s3:ListBucketVersions", json.dumps({"Fn::GetAtt": ["RecordingsBucket", "Arn"]})),
    }
    (listing,) = [s for s in s3 if _grants(s, "s3:ListBucketVersions")]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": "manifests/*"}}


def test_the_manifest_key_is_published_and_auditors_can_verify(template):
    from wardgate.cli import STACK_OUTPUTS

    output = template.doc["Outputs"]["RecordingManifestKeyArn"]
    assert output["Value"] == {"Fn::GetAtt": ["RecordingManifestKey", "Arn"]}
    assert STACK_OUTPUTS["RecordingManifestKeyArn"] == "RECORDINGS_MANIFEST_KEY"  # verify --stack
    statements = props(template, "AuditorPolicy")["PolicyDocument"]["Statement"]
    (public,) = [s for s in statements if _grants(s, "kms:GetPublicKey")]
    assert public["Resource"] == {"Fn::GetAtt": ["RecordingManifestKey", "Arn"]}
    (decrypt,) = [s for s in statements if _grants(s, "kms:Decrypt")]
    assert decrypt["Resource"] == {"Fn::GetAtt": ["RecordingsKey", "Arn"]}
    reads = [s for s in statements if _grants(s, "s3:GetObject") and "RecordingsBucket" in json.dumps(s)]
    assert "manifests/*" in json.dumps(reads)
    assert not any(_grants(s, "kms:Sign") for s in statements)


# ---------------------------------------------------------------- the auditors' replay page


AUDIT_PAGE_ROUTES = {
    ("GET", "/audit"),
    ("GET", "/audit/records/{record_id}"),
    ("GET", "/audit/signin"),
    ("GET", "/audit/callback"),
    ("POST", "/audit/signout"),
    ("GET", "/audit/static/{asset}"),
}


def test_the_replay_page_has_its_routes_on_the_api_and_local_mode_serves_them(template):
    function = props(template, "AuditPageFunction")
    assert (function["CodeUri"], function["Handler"]) == ("functions/audit_page/", "app.handler")
    events = function["Events"].values()
    assert all(e["Type"] == "HttpApi" and e["Properties"]["ApiId"] == {"Ref": "HttpApi"} for e in events)
    assert {(e["Properties"]["Method"], e["Properties"]["Path"]) for e in events} == AUDIT_PAGE_ROUTES
    served = {(r.method, r.path) for r in template.routes() if r.function == "AuditPageFunction"}
    assert served == AUDIT_PAGE_ROUTES
    assert (ROOT / "functions/audit_page/app.py").exists()
    assert resource(template, "AuditPageFunctionLogGroup")["Properties"]["RetentionInDays"] == 30


def test_the_replay_page_is_configured_for_athena_its_group_and_its_own_key(template):
    from wardgate.auditing.web.app import PageSettings

    parameters = template.doc["Parameters"]
    assert parameters["AuditorGroup"]["Default"] == "auditors"
    assert parameters["AuditClientId"]["Default"] == ""  # unset: the page answers 503, it never guesses
    variables = props(template, "AuditPageFunction")["Environment"]["Variables"]
    assert variables["AUDITOR_GROUP"] == {"Ref": "AuditorGroup"}
    assert variables["AUDIT_SESSION_KEY_SECRET"] == {"Ref": "AuditSessionKeySecret"}
    assert variables["RECORDINGS_MANIFEST_KEY"] == {"Fn::GetAtt": ["RecordingManifestKey", "Arn"]}
    assert "GenerateSecretString" in props(template, "AuditSessionKeySecret")
    issuers = '[{"issuer": "https://idp.example", "audience": "wardgate"}]'
    env = template.function_environment(
        "AuditPageFunction", {"TrustedIssuers": issuers, "AuditClientId": "replay-page"}
    )
    env["WARDGATE_PUBLIC_URL"] = ""  # no custom domain: the domain API Gateway was reached on
    settings = PageSettings.from_env(env)
    assert (settings.engine, settings.auditor_group) == ("athena", "auditors")
    assert settings.client_id == "replay-page"
    assert settings.workgroup and settings.database and settings.secure
    outputs = template.doc["Outputs"]
    assert json.dumps(outputs["AuditPageRedirectUri"]["Value"]).count("/audit/callback") == 2


def test_the_replay_page_reads_and_queries_and_writes_nothing_else(template):
    granted = grants(statements(props(template, "AuditPageFunction")))
    actions = {action for action, _, _ in granted}
    assert actions == {
        "secretsmanager:GetSecretValue",
        "athena:StartQueryExecution",
        "athena:GetQueryExecution",
        "athena:GetQueryResults",
        "athena:StopQueryExecution",
        "glue:GetDatabase",
        "glue:GetTable",
        "glue:GetPartitions",
        "s3:ListBucket",
        "s3:GetBucketLocation",
        "s3:GetObject",
        "s3:PutObject",
        "s3:AbortMultipartUpload",
        "kms:Decrypt",
        "kms:GetPublicKey",
    }
    by_action: dict[str, set[str]] = {}
    for action, res, _ in granted:
        by_action.setdefault(action, set()).add(res)
    assert by_action["secretsmanager:GetSecretValue"] == {json.dumps({"Ref": "AuditSessionKeySecret"})}
    assert by_action["kms:GetPublicKey"] == {json.dumps({"Fn::GetAtt": ["RecordingManifestKey", "Arn"]})}
    assert by_action["kms:Decrypt"] == {json.dumps({"Fn::GetAtt": ["RecordingsKey", "Arn"]})}
    assert all("AuditQueryResultsBucket" in res for res in by_action["s3:PutObject"])  # Athena's results only
    assert all("recordings/*" in res for res in by_action["s3:GetObject"] if "RecordingsBucket" in res)
    text = json.dumps(props(template, "AuditPageFunction")["Policies"])
    for other in ("ApprovalKeySecret", "ScimTokenSecret", "TransactionKeySecret", "dynamodb:", "firehose:"):
        assert other not in text, other
    assert '"*"' not in text and "kms:Sign" not in text


def test_ssh_certificates_have_their_route_and_only_that_function_reads_the_ca_key(template):
    function = props(template, "SshCertificateFunction")
    assert (function["CodeUri"], function["Handler"]) == ("functions/ssh_certificate/", "app.handler")
    (event,) = function["Events"].values()
    assert (event["Properties"]["Method"], event["Properties"]["Path"]) == ("POST", "/ssh/certificate")
    served = {(r.method, r.path) for r in template.routes() if r.function == "SshCertificateFunction"}
    assert served == {("POST", "/ssh/certificate")}
    assert resource(template, "SshCertificateFunctionLogGroup")["Properties"]["RetentionInDays"] == 30
    variables = function["Environment"]["Variables"]
    assert variables["SSH_CA_KEY"] == {"Ref": "SshCaKeySecretName"}
    assert variables["SSH_HOST_PUBLIC_KEY"] == {"Ref": "SshHostPublicKey"}
    parameters = template.doc["Parameters"]
    assert not parameters["SshCaKeySecretName"]["Default"].startswith("wardgate/")
    # The CA's secret: read by this function alone, and it reads no other secret.
    ca_secret = "${SshCaKeySecretName}"
    granted = grants(statements(function))
    secrets = {res for action, res, _ in granted if action.startswith("secretsmanager:")}
    assert len(secrets) == 1 and ca_secret in next(iter(secrets))
    assert {action for action, _, _ in granted} == {
        "secretsmanager:GetSecretValue",
        "dynamodb:GetItem",
        "dynamodb:UpdateItem",
        "dynamodb:PutItem",
        "firehose:PutRecord",
        "firehose:PutRecordBatch",
    }
    for logical_id, other in template.resources.items():
        if logical_id == "SshCertificateFunction" or "Policies" not in other.get("Properties", {}):
            continue
        assert ca_secret not in json.dumps(other["Properties"]["Policies"]), logical_id
    # Its environment is what ssh_certificates reads.
    issuers = '[{"issuer": "https://idp.example", "audience": "wardgate"}]'
    env = template.function_environment("SshCertificateFunction", {"TrustedIssuers": issuers})
    assert env["SSH_CA_KEY"] == "wardgate-ssh-ca"


def test_the_ssh_listener_gets_its_host_key_secret_and_the_ca_public_key_only(template):
    env = environment(template)
    assert env["SSH_HOST_KEY"] == {"Ref": "SshHostKeySecretName"}
    assert env["SSH_CA_PUBLIC_KEY"] == {"Ref": "SshCaPublicKey"}
    assert "SSH_CA_KEY" not in env, "the task checks certificates; it never holds the CA's signing key"
    task = grants(statements(props(template, "TcpGatewayTaskRole")))
    secrets = {res for action, res, _ in task if action == "secretsmanager:GetSecretValue"}
    assert json.dumps(SSH_HOST_KEY_SECRET, sort_keys=True) in secrets
    assert "SshCaKeySecretName" not in json.dumps(props(template, "TcpGatewayTaskRole"))
    # ... and no other role reads the host key's secret.
    for logical_id, res in template.resources.items():
        if logical_id != "TcpGatewayTaskRole" and res["Type"] in (
            "AWS::IAM::Role",
            "AWS::Serverless::Function",
        ):
            assert "SshHostKeySecretName" not in json.dumps(res.get("Properties", {})), logical_id
    parameters = template.doc["Parameters"]
    assert parameters["SshHostKeySecretName"]["Default"] == "wardgate-ssh-host-key"
    assert not parameters["SshHostKeySecretName"]["Default"].startswith("wardgate/"), (
        "proxy functions read wardgate/*"
    )
    assert parameters["SshCaPublicKey"]["Default"] == ""
    pattern = re.compile(parameters["SshCaPublicKey"]["AllowedPattern"])
    assert pattern.fullmatch("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIO0 wardgate SSH CA")
    assert not pattern.fullmatch("-----BEGIN OPENSSH PRIVATE KEY-----"), "a private key is refused"
    endpoint = template.doc["Outputs"]["TcpGatewaySshEndpoint"]["Value"]["Fn::Sub"]
    assert endpoint[0] == "${Host}:${SshPort}"
    assert endpoint[1] == {"Host": {"Fn::GetAtt": ["TcpGatewayLoadBalancer", "DNSName"]}}
