"""Policy: rules on parsed operations, rule packs, policies as code, one engine for every protocol.

- ``rules``: what a rule matches and yields; ``engine``: the indexed decision over a policy set;
- ``packs``: ready-made guardrails; ``document``: building and checking a policy document;
- ``files``: YAML files and the published schema; ``store``: applied versions in DynamoDB.
"""

from wardgate.policy.engine import Decision, PolicySet

__all__ = ["Decision", "PolicySet"]
