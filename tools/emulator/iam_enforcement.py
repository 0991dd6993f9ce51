"""IAM enforcement closer to AWS than moto's own, for the emulator's `--iam-enforcement`.

moto checks a request against the caller's IAM policies once INITIAL_NO_AUTH_ACTION_COUNT
requests have been served (moto/core/authorization.py, moto/iam/access_control.py), but:

- the action is always checked; the resource only where moto knows it (IAM actions naming an
  existing role, SQS actions on an existing queue, sts:AssumeRole): everything else is "*",
  which a statement scoped to ARNs never matches, so such statements grant nothing;
- of conditions it evaluates StringEquals alone, on sts:ExternalId alone (the one key it
  takes from the request); any other condition passes, so an Allow with a condition is an
  Allow and a Deny with one is a Deny; a StringEquals that fails makes even an Allow an
  explicit deny;
- permissions boundaries are stored, never evaluated; trust policies only for a role of the
  caller's own account.

Enabled by the emulator's `--iam-enforcement`, this module replaces that evaluation with:

- resources: also for IAM creates and instance profiles, OIDC providers, SQS queues by
  name, EventBridge rules (from the request); EC2, EKS and ELB requests stay unknown. An
  unknown resource matches an Allow scoped to ARNs and no Deny scoped to ARNs (the
  permissive reading: enforcement can then only miss a refusal, never invent one);
- conditions: StringEquals/StringNotEquals/StringLike/StringNotLike/ArnEquals/ArnLike/
  ArnNotEquals/ArnNotLike/Null over the keys taken from the request (iam:PolicyARN,
  iam:PermissionsBoundary: the request's, or the role's own for the policy and boundary
  calls that act on one; iam:AWSServiceName, sts:ExternalId). A condition on any other key
  is unknown: an Allow with it applies, a Deny with it does not (permissive again);
- permissions boundaries: a session of a role with a boundary may do only what the
  boundary also allows;
- signatures: not checked (moto's recomputation fails on EKS's GET requests); the access
  key must still be an IAM user's or an assumed-role session's.

So under it a call fails when no statement of the caller grants its action (on its
resource, where known), when a Deny names it, when a known condition refuses it, or when
the role's boundary does not allow it.

Enforcement starts off (moto's count is infinite) so that a test can set up accounts,
users and the customer's stack; POST /_emulator/config {"enforce_iam": true} turns it on.
"""

from __future__ import annotations

import fnmatch
import json
import threading
from typing import Any
from urllib.parse import urlparse

from moto import settings
from moto.core.authorization import ActionAuthenticatorMixin
from moto.iam import access_control
from moto.iam.access_control import IAMPolicy, IAMPolicyStatement, IAMRequestBase, PermissionResult

CONTEXT = threading.local()

KNOWN_KEYS = {"iam:policyarn", "iam:permissionsboundary", "iam:awsservicename", "sts:externalid"}

# IAM calls whose iam:PermissionsBoundary is the boundary of the role they act on.
ROLE_BOUNDARY_ACTIONS = {
    "AttachRolePolicy", "DetachRolePolicy", "PutRolePolicy", "DeleteRolePolicy",
    "DeleteRolePermissionsBoundary",
}


def set_enforcing(on: bool) -> None:
    settings.INITIAL_NO_AUTH_ACTION_COUNT = 0 if on else float("inf")
    ActionAuthenticatorMixin.request_count = 0


def enforcing() -> bool:
    return settings.INITIAL_NO_AUTH_ACTION_COUNT == 0


def _param(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    if isinstance(value, list):
        value = value[0] if value else None
    return value


def _json_body(body: Any) -> dict[str, Any]:
    try:
        parsed = json.loads(body or b"{}")
        return parsed if isinstance(parsed, dict) else {}
    except (ValueError, TypeError):
        return {}


def _context(request: IAMRequestBase) -> dict[str, str]:
    data = request._data or {}
    action = request._action.split(":", 1)[1]
    out: dict[str, str] = {}
    for key, name in (("iam:policyarn", "PolicyArn"), ("iam:awsservicename", "AWSServiceName"),
                      ("sts:externalid", "ExternalId")):
        value = _param(data, name)
        if value:
            out[key] = value
    if request._service == "iam":
        if action in ("CreateRole", "PutRolePermissionsBoundary"):
            value = _param(data, "PermissionsBoundary")
            if value:
                out["iam:permissionsboundary"] = value
        elif action in ROLE_BOUNDARY_ACTIONS:
            role = _param(data, "RoleName")
            try:
                boundary = request.backend.get_role(role).permissions_boundary_arn if role else None
            except Exception:  # noqa: BLE001 - no such role: no boundary
                boundary = None
            if boundary:
                out["iam:permissionsboundary"] = boundary
    return out


def _resource(response: Any, known: str) -> str:
    """The request's resource where moto's own answer is "*" (unknown), or wrong: an
    instance profile's calls name a role too, but act on the profile."""
    account, region = response.current_account, response.region
    data = response.querystring or {}
    service = getattr(response, "service_name", "")
    if service == "iam":
        profile = _param(data, "InstanceProfileName")
        if profile:
            return f"arn:aws:iam::{account}:instance-profile/{profile}"
        role = _param(data, "RoleName")
        if role:
            return f"arn:aws:iam::{account}:role/{role}"
        provider = _param(data, "OpenIDConnectProviderArn")
        if provider:
            return provider
        url = _param(data, "Url")
        if url:
            parsed = urlparse(url)
            return f"arn:aws:iam::{account}:oidc-provider/{parsed.netloc}{parsed.path}"
        policy = _param(data, "PolicyArn")
        if policy:
            return policy
    if known != "*":
        return known
    if service == "sqs":
        body = _json_body(response.body)
        name = body.get("QueueName") or _param(data, "QueueName")
        url = body.get("QueueUrl") or _param(data, "QueueUrl")
        if not name and url:
            name = url.rstrip("/").rsplit("/", 1)[-1]
        if name:
            return f"arn:aws:sqs:{region}:{account}:{name}"
    if service == "events":
        body = _json_body(response.body)
        arn = body.get("ResourceARN")
        if arn:
            return arn
        name = body.get("Name") or body.get("Rule")
        if name:
            return f"arn:aws:events:{region}:{account}:rule/{name}"
    if service == "cloudformation":
        name = _param(data, "StackName")
        if name:
            from moto.cloudformation.models import cloudformation_backends

            for stack in cloudformation_backends[account][region].stacks.values():
                if name in (stack.name, stack.stack_id):
                    return stack.stack_id
    return "*"


def _matches(patterns: Any, value: str) -> bool:
    patterns = patterns if isinstance(patterns, list) else [patterns]
    return any(fnmatch.fnmatchcase(value.lower(), p.lower()) for p in patterns)


def _condition(block: dict[str, Any], context: dict[str, str]) -> bool | None:
    """True, False, or None when it names a key this module cannot know."""
    unknown = False
    for operator, keys in block.items():
        op = operator.split(":")[-1]
        for key, expected in keys.items():
            low = key.lower()
            if low not in KNOWN_KEYS:
                unknown = True
                continue
            values = [str(v) for v in (expected if isinstance(expected, list) else [expected])]
            actual = context.get(low)
            if op == "Null":
                ok = (actual is None) == (values[0].lower() == "true")
            elif actual is None:
                ok = op.endswith("NotEquals") or op.endswith("NotLike")
            elif op in ("StringEquals", "ArnEquals"):
                ok = actual in values
            elif op in ("StringNotEquals", "ArnNotEquals"):
                ok = actual not in values
            elif op in ("StringLike", "ArnLike"):
                ok = _matches(values, actual)
            elif op in ("StringNotLike", "ArnNotLike"):
                ok = not _matches(values, actual)
            else:
                unknown = True
                continue
            if not ok:
                return False
    return None if unknown else True


def _statement_permits(self: IAMPolicyStatement, action: str, resource: str = "*",
                       principal: str | None = None,
                       incoming_condition_values: dict[str, str] | None = None) -> PermissionResult:
    if principal is not None or "Principal" in self._statement:
        return _original_statement(self, action, resource, principal, incoming_condition_values)
    st = self._statement
    allow = st.get("Effect") == "Allow"
    if "NotAction" in st:
        concerned = not self._check_element_matches("NotAction", action)
    else:
        concerned = self._check_element_matches("Action", action)
    if not concerned:
        return PermissionResult.NEUTRAL
    if resource == "*":
        resource_ok = allow or st.get("Resource") == "*" or st.get("Resource") == ["*"]
    elif "NotResource" in st:
        resource_ok = not self._check_element_matches("NotResource", resource)
    else:
        resource_ok = self._check_element_matches("Resource", resource)
    if not resource_ok:
        return PermissionResult.NEUTRAL
    verdict = _condition(st.get("Condition", {}), getattr(CONTEXT, "values", {}))
    if verdict is None:
        verdict = allow
    if not verdict:
        return PermissionResult.NEUTRAL
    return PermissionResult.PERMITTED if allow else PermissionResult.DENIED


def _boundary_of(request: IAMRequestBase) -> Any:
    key = request._access_key
    role = getattr(key, "_owner_role_name", None)
    if role is None:
        return None
    try:
        arn = request.backend.get_role(role).permissions_boundary_arn
        return request.backend.get_policy(arn) if arn else None
    except Exception:  # noqa: BLE001 - a role or boundary gone: nothing to add
        return None


def _check_action_permitted(self: IAMRequestBase, resource: str) -> None:
    CONTEXT.values = _context(self)
    try:
        _original_check(self, resource)
        boundary = _boundary_of(self)
        if boundary is not None and self._action != "sts:GetCallerIdentity":
            if IAMPolicy(boundary).is_action_permitted(self._action, resource) != PermissionResult.PERMITTED:
                self._raise_access_denied()
    finally:
        CONTEXT.values = {}


_original_statement = IAMPolicyStatement.is_action_permitted
_original_check = IAMRequestBase.check_action_permitted


def install() -> None:
    """Patches moto's evaluation as the module's docstring says; enforcement stays off."""
    from moto.core.responses import BaseResponse

    IAMPolicyStatement.is_action_permitted = _statement_permits
    IAMRequestBase.check_action_permitted = _check_action_permitted
    # moto recomputes SigV4 and gets EKS's GET requests wrong (SignatureDoesNotMatch): the
    # keys must still be a user's or a session's, their signature is not checked.
    IAMRequestBase.check_signature = lambda self: None
    authorize = BaseResponse._authenticate_and_authorize_normal_action

    def authorize_with_resource(self: BaseResponse, resource: str = "*") -> None:
        if enforcing():
            resource = _resource(self, resource)
        authorize(self, resource)

    BaseResponse._authenticate_and_authorize_normal_action = authorize_with_resource
    access_control.log.debug("byoc emulator: IAM enforcement installed")
    set_enforcing(False)
