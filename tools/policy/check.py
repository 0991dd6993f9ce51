"""Lints the trust template's rendered IAM policies with two maintained IAM linters,
parliament and cloudsplaining (pinned in tools/emulator/requirements.txt), and fails when
they find a privilege-escalation path for byoc's role that the template does not close.

    .venv/bin/python tools/policy/check.py [--template PATH]

For each combination of the optional features (all on, all off) the template is rendered
(tools/policy/render.py) and:

- every policy fits IAM's 6,144 characters (whitespace aside);
- parliament (with its community auditors) lints every statement: a finding fails unless
  ACCEPTED lists it for that statement with the reason;
- the escalation paths of byoc's role are the union of cloudsplaining's (resource-scoped
  statements counted: `flag_resource_arn_statements`) and parliament's, found over the Allow
  statements of all its policies together (cloudsplaining drops an action any Deny names,
  whatever the Deny's resources: it would hide them), and the same for the permissions
  boundary (what any role byoc creates may do). Neither linter reads conditions, so a path
  passes only when one of its actions is closed by the template in a way checked here
  (CLOSED): given only to roles under the boundary, limited to the boundary's roles, ...;
  an open path fails with the linter's name for it;
- the boundary allows no STS and no IAM besides instance profiles, passing byoc's roles and
  service-linked roles.

Exit 0 when clean, 1 with the findings otherwise (printed).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
from collections.abc import Callable
from typing import Any

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from cloudsplaining.scan.policy_document import PolicyDocument  # noqa: E402
from parliament import analyze_policy_string  # noqa: E402
from render import TEMPLATE, render  # noqa: E402

ACCOUNT = "111111111111"
PARAMS = {"TrustedAccountId": "123456789012", "ExternalId": "e" * 40, "TenantSlug": "acme"}
FEATURES = {
    "all on": {"EnableKarpenter": "true", "CertManagerHostedZoneIds": "Z1,Z2",
               "ExternalSecretsPrefix": "byoc/"},
    "all off": {"EnableKarpenter": "false"},
}
MAX_POLICY_CHARS = 6144

# (statement Sid, parliament issue) -> why it is right as it is.
ACCEPTED = {
    ("ReadWhatItManages", "RESOURCE_STAR"): "EC2, EKS and ELB describe/list calls take no resource",
    ("CreateTaggedStandaloneNetworking", "RESOURCE_STAR"): "scoped by aws:RequestTag instead",
    ("CreateTaggedClusters", "RESOURCE_STAR"): "CreateCluster takes no resource; scoped by aws:RequestTag",
    ("BuildInsideManagedNetworking", "RESOURCE_STAR"): "scoped by aws:ResourceTag instead",
    ("TagOnCreate", "RESOURCE_STAR"): "scoped by ec2:CreateAction instead",
    ("RetagManagedNetworking", "RESOURCE_STAR"): "scoped by aws:ResourceTag instead",
    ("CreateTaggedSubnetsAndRouteTables", "RESOURCE_MISMATCH"):
        "the new subnet or table only; its VPC is allowed by BuildInsideManagedNetworking",
    ("CreateTaggedNatGateways", "RESOURCE_MISMATCH"):
        "the new gateway only; its subnet and address are allowed by BuildInsideManagedNetworking",
    ("EksServiceLinkedRoles", "RESOURCE_STAR"): "scoped by iam:AWSServiceName",
    ("DeleteManagedNetworking", "RESOURCE_STAR"): "scoped by aws:ResourceTag instead",
    ("DeleteWhatKarpenterMade", "RESOURCE_STAR"): "scoped by the tenant's clusters' tag values",
    ("DeleteWhatTheLoadBalancerControllerMade", "RESOURCE_STAR"): "scoped by the tenant's clusters' tag values",
    ("DeleteWhatTheVpcCniMade", "RESOURCE_STAR"): "scoped by the tenant's clusters' tag values",
    ("DeleteWhatAutoModeMade", "RESOURCE_STAR"): "scoped by the tenant's clusters' tag values",
    ("BoundedRoles", "PERMISSIONS_MANAGEMENT_ACTIONS"): "only on roles under the boundary (CLOSED)",
    ("AttachEksManagedPolicies", "PERMISSIONS_MANAGEMENT_ACTIONS"): "AWS's EKS policies, roles under the boundary",
    ("DetachEksManagedPolicies", "PERMISSIONS_MANAGEMENT_ACTIONS"): "takes permissions away",
    ("ByocRoles", "PERMISSIONS_MANAGEMENT_ACTIONS"): "trust of byoc-* roles (all under the boundary, CLOSED) and removals",
    ("PassOnlyByocRoles", "PERMISSIONS_MANAGEMENT_ACTIONS"): "byoc-* roles to EKS and EC2 only",
    ("ByocInstanceProfiles", "PERMISSIONS_MANAGEMENT_ACTIONS"): "byoc-* instance profiles; PassRole limits the roles",
    ("EksServiceLinkedRoles", "PERMISSIONS_MANAGEMENT_ACTIONS"): "EKS's own service-linked roles",
    ("ClusterOidcProviders", "PERMISSIONS_MANAGEMENT_ACTIONS"): "OIDC providers of AWS's oidc.eks issuers only",
    ("ServiceLinkedRoles", "PERMISSIONS_MANAGEMENT_ACTIONS"): "the load balancing and spot service-linked roles",
    ("InterruptionQueue", "PERMISSIONS_MANAGEMENT_ACTIONS"): "SetQueueAttributes of byoc-* queues (their policy lets EventBridge send)",
    ("DenyRemovingBoundaries", "RESOURCE_STAR"): "a Deny",
    ("DenyRetaggingIntoByocsReach", "RESOURCE_STAR"): "a Deny",
    ("DenyRetaggingLoadBalancersIntoByocsReach", "RESOURCE_STAR"): "a Deny",
    ("EksClusterAndNodes", "RESOURCE_STAR"): "AWS's managed EKS policies grant these on any resource",
    ("EksClusterAndNodes", "PERMISSIONS_MANAGEMENT_ACTIONS"): "shield/wafv2 association of the cluster's load balancers",
    ("EksClusterAndNodes", "CREDENTIALS_EXPOSURE"):
        "ecr:GetAuthorizationToken (nodes pull images), cognito-idp:DescribeUserPoolClient (ALB auth)",
    ("ServiceLinkedRoles", "RESOURCE_STAR"): "scoped by iam:AWSServiceName",
    ("NodeInstanceProfiles", "PERMISSIONS_MANAGEMENT_ACTIONS"): "instance profiles only; PassRole limits the roles",
    ("PassByocRolesToNodes", "PERMISSIONS_MANAGEMENT_ACTIONS"): "byoc-* roles (under the boundary) to EC2 only",
    ("KarpenterPricesAndTemplates", "RESOURCE_STAR"): "pricing takes no resource; launch templates are Karpenter's",
    ("KarpenterEndsItsNodes", "RESOURCE_STAR"): "scoped by the karpenter.sh/nodepool tag",
    ("CertManagerDns01Lookups", "RESOURCE_STAR"): "GetChange and ListHostedZonesByName take no zone",
}

# What the boundary may grant of IAM and STS (all else of those services is refused).
BOUNDARY_IAM = {
    "iam:createinstanceprofile", "iam:taginstanceprofile", "iam:addroletoinstanceprofile",
    "iam:removerolefrominstanceprofile", "iam:deleteinstanceprofile", "iam:getinstanceprofile",
    "iam:passrole", "iam:createservicelinkedrole",
}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def grants(statement: dict[str, Any], action: str) -> bool:
    """Whether an Allow statement names `action` (lowercase), wildcards included."""
    import fnmatch

    if statement.get("Effect") != "Allow":
        return False
    return any(fnmatch.fnmatchcase(action, a.lower()) for a in as_list(statement.get("Action", [])))


def condition_values(statement: dict[str, Any], key: str, operators: tuple[str, ...]) -> list[str] | None:
    for op in operators:
        block = statement.get("Condition", {}).get(op, {})
        if key in block:
            return as_list(block[key])
    return None


class Template:
    def __init__(self, rendered: dict[str, Any]) -> None:
        self.policies = rendered["policies"]
        self.deployer = [s for p in self.policies.values() if p["attached"] for s in p["document"]["Statement"]]
        boundary = [p for p in self.policies.values() if p["name"].endswith("-boundary")]
        self.boundary_arn = f"arn:aws:iam::{ACCOUNT}:policy/{boundary[0]['name']}" if boundary else None
        self.boundary = boundary[0]["document"]["Statement"] if boundary else []
        role = [p for p in self.policies.values() if p["attached"]]
        self.role_arn = f"arn:aws:iam::{ACCOUNT}:role/{role[0]['name'].rsplit('-', 1)[0]}" if role else None

    def allowed_by(self, statements: list[dict[str, Any]], action: str) -> list[dict[str, Any]]:
        return [s for s in statements if grants(s, action)]

    def bounded(self, statement: dict[str, Any]) -> bool:
        values = condition_values(statement, "iam:PermissionsBoundary", ("ArnEquals", "StringEquals"))
        return self.boundary_arn is not None and values == [self.boundary_arn]

    def denies_own_role(self, statements: list[dict[str, Any]], action: str) -> bool:
        import fnmatch

        return any(
            s.get("Effect") == "Deny"
            and any(fnmatch.fnmatchcase(action, a.lower()) for a in as_list(s.get("Action", [])))
            and self.role_arn in as_list(s.get("Resource", []))
            and not s.get("Condition")
            for s in statements
        )

    def only_byoc_roles(self, statement: dict[str, Any]) -> bool:
        return all(r.startswith(f"arn:aws:iam::{ACCOUNT}:role/byoc-") for r in as_list(statement.get("Resource")))

    def roles_are_bounded(self) -> bool:
        """byoc-* roles can be made only under the boundary."""
        creates = self.allowed_by(self.deployer, "iam:createrole")
        return all(self.bounded(s) for s in creates)

    # Each closes an action of an escalation path, for the statements `within` (the
    # deployer's or the boundary's): (why, test).
    def closers(self, within: list[dict[str, Any]]) -> dict[str, tuple[str, Callable[[], bool]]]:
        def all_bounded(action: str) -> bool:
            return all(self.bounded(s) for s in self.allowed_by(within, action))

        def attach_closed() -> bool:
            dangerous = ("AdministratorAccess", "IAMFullAccess", "PowerUserAccess")
            for s in self.allowed_by(within, "iam:attachrolepolicy"):
                arns = condition_values(s, "iam:PolicyARN", ("ArnEquals", "StringEquals")) or []
                if not self.bounded(s) or not arns or any(a.endswith(dangerous) for a in arns):
                    return False
            return True

        def trust_closed() -> bool:
            return (self.roles_are_bounded()
                    and all(self.only_byoc_roles(s) for s in self.allowed_by(within, "iam:updateassumerolepolicy"))
                    and self.denies_own_role(self.deployer, "iam:updateassumerolepolicy"))

        def pass_closed() -> bool:
            return (self.roles_are_bounded()
                    and all(self.only_byoc_roles(s)
                            and condition_values(s, "iam:PassedToService", ("StringEquals",))
                            for s in self.allowed_by(within, "iam:passrole"))
                    and self.denies_own_role(within, "iam:passrole"))

        return {
            "iam:putrolepolicy": ("only on roles under the boundary", lambda: all_bounded("iam:putrolepolicy")),
            "iam:attachrolepolicy": ("AWS's EKS policies, only on roles under the boundary", attach_closed),
            "iam:updateassumerolepolicy": ("only byoc-* roles, which are all under the boundary", trust_closed),
            "iam:passrole": ("only byoc-* roles (under the boundary) to named services", pass_closed),
        }


def escalations(statements: list[dict[str, Any]]) -> dict[str, list[str]]:
    allows = [s for s in statements if s.get("Effect") == "Allow"]
    doc = {"Version": "2012-10-17", "Statement": allows}
    found: dict[str, list[str]] = {}
    for e in PolicyDocument(doc, flag_resource_arn_statements=True).allows_privilege_escalation:
        found[f"cloudsplaining:{e['type']}"] = [a.lower() for a in e["actions"]]
    for f in analyze_policy_string(json.dumps(doc), include_community_auditors=True).findings:
        if f.issue == "PRIVILEGE_ESCALATION":
            found[f"parliament:{f.location['type']}"] = [a.lower() for a in f.location["actions"]]
    return found


def lint(name: str, policy: dict[str, Any]) -> list[str]:
    problems = []
    doc = policy["document"]
    size = len(json.dumps(doc, separators=(",", ":")))
    if size > MAX_POLICY_CHARS:
        problems.append(f"{name}: {size} characters, more than IAM's {MAX_POLICY_CHARS}")
    for statement in doc["Statement"]:
        sid = statement.get("Sid", "?")
        one = {"Version": "2012-10-17", "Statement": [statement]}
        for f in analyze_policy_string(json.dumps(one), include_community_auditors=True).findings:
            if f.issue == "PRIVILEGE_ESCALATION":
                continue  # judged over the whole role below
            if (sid, f.issue) not in ACCEPTED:
                problems.append(f"{name}/{sid}: parliament {f.issue}: {f.detail or f.location}")
    return problems


def check(template_path: pathlib.Path, verbose: bool = False) -> list[str]:
    problems: list[str] = []
    for features, extra in FEATURES.items():
        params = dict(PARAMS, **extra)
        rendered = render(template_path, {k: v for k, v in params.items() if k in _parameters(template_path)},
                          account=ACCOUNT)
        t = Template(rendered)
        for name, policy in rendered["policies"].items():
            problems += [f"[{features}] {p}" for p in lint(name, policy)]
        for who, statements in (("byoc's role", t.deployer), ("the boundary", t.boundary)):
            closers = t.closers(statements)
            for path, actions in escalations(statements).items():
                closed = [f"{a}: {closers[a][0]}" for a in actions if a in closers and closers[a][1]()]
                if not closed:
                    problems.append(f"[{features}] {who}: escalation path {path} ({', '.join(actions)}) is open")
                elif verbose:
                    print(f"[{features}] {who}: {path} closed ({'; '.join(closed)})")
        if t.boundary_arn is None:
            problems.append(f"[{features}] no permissions boundary: the roles byoc's role creates are uncapped")
        for s in t.boundary:
            if s.get("Effect") != "Allow":
                continue
            for a in as_list(s["Action"]):
                low = a.lower()
                if low.startswith("sts:") or (low.startswith("iam:") and low not in BOUNDARY_IAM):
                    problems.append(f"[{features}] the boundary allows {a} ({s.get('Sid')})")
    return problems


def _parameters(template_path: pathlib.Path) -> set[str]:
    from cfnlint.decode import decode_str

    template, _ = decode_str(template_path.read_text())
    return set(template.get("Parameters", {}))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--template", type=pathlib.Path, default=TEMPLATE)
    p.add_argument("-v", "--verbose", action="store_true", help="also list the paths found closed")
    args = p.parse_args()
    problems = check(args.template, args.verbose)
    for problem in problems:
        print(problem)
    if problems:
        return 1
    print(f"{args.template.name}: no open privilege-escalation path; every policy linted clean")
    return 0


if __name__ == "__main__":
    sys.exit(main())
