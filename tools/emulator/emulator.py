"""The AWS emulator for byoc's tests: moto's own WSGI app, plus realistic timing and faults.

moto makes every resource ready at once and never throttles. Real AWS does neither, and the
engine's waiters, retries and crash recovery must be tested against the real shape of it.
Knobs (command-line flags, also readable and settable while running through
GET/POST /_emulator/config with a JSON body of the same names):

  create_seconds   EKS clusters and node groups report CREATING, NAT gateways `pending`,
                   for this long after they are created, then ACTIVE / `available`.
  create_seconds_by_kind
                   per-kind overrides of create_seconds: {"nat_gateway": 2, "eks_cluster": 4,
                   "eks_nodegroup": 3}.
  update_seconds   after an EKS update (UpdateClusterVersion, UpdateClusterConfig,
                   UpdateNodegroupVersion, UpdateNodegroupConfig) the cluster or node group
                   reports UPDATING and the update InProgress for this long, then the change
                   shows with ACTIVE and the update Successful. null (the default): the kind's
                   create delay.
  delete_seconds   after a delete, EKS clusters and node groups report DELETING (then are
                   gone: 404), NAT gateways `deleting` (then `deleted`), for this long.
  latency_ms       extra delay before each AWS request: "200" (fixed) or "50-300" (uniform).
  throttle_rate    fraction (0..1) of AWS requests answered with the protocol's throttling
                   error instead: EC2 `RequestLimitExceeded` (HTTP 503), query/JSON APIs
                   `Throttling` (HTTP 400).
  seed             seed of the random choices above, for reproducible runs.
  deny_assume_role role ARNs whose sts:AssumeRole is answered with AccessDenied, as AWS does
                   when the trust policy or the ExternalId does not match (moto checks
                   neither).
  enforce_iam      (only with --iam-enforcement) every request is checked against the
                   caller's IAM policies, as iam_enforcement.py evaluates them; off at start,
                   so that a test can set up accounts, users and stacks first.

EKS TagResource and UntagResource tag node groups too (moto tags clusters only).

CloudFormation: an item of a list that is `!Ref AWS::NoValue` (an `!If` whose condition is
false) is dropped, as AWS drops it; moto keeps a null.

EKS updates are refused as AWS refuses them: a Kubernetes version more than one minor ahead
(or not ahead), a node group version above the cluster's, an update while the resource is not
ACTIVE or another update is in progress. DescribeUpdate and ListUpdates follow them.

GET /_emulator/requests lists the last 2000 AWS requests (service, method, path, body), so a
test can check what was sent where moto ignores a field; ?service=eks narrows the list.

GET /_emulator/actions?account=ID&role=NAME counts the IAM actions (`ec2:CreateVpc`, the
signing service and the operation) of the requests moto handled in that account, signed by
a session of that role (without role: by anyone): what a principal called, whether allowed
or not.

GET /_emulator/stats counts requests and throttled requests. moto's own /moto-api/ (for
example POST /moto-api/reset) passes through untouched and is never delayed or throttled.

The server prints `listening on http://HOST:PORT` once its socket accepts connections (use
--port 0 for a free port). With --exit-with-parent it exits when the process that started it
dies, so a killed test run never leaves an emulator behind.
"""

from __future__ import annotations

import argparse
import collections
import io
import json
import math
import os
import random
import re
import sys
import threading
import time
import uuid
from typing import Any, Callable

os.environ.setdefault("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")

import moto.eks.models as eks_models  # noqa: E402
import moto.eks.urls as eks_urls  # noqa: E402
from moto.core.responses import ActionResult  # noqa: E402
from moto.core.utils import utcnow  # noqa: E402
from moto.ec2.models.nat_gateways import NatGateway, NatGatewayBackend  # noqa: E402
from moto.eks.exceptions import (  # noqa: E402
    InvalidParameterException,
    ResourceInUseException,
    ResourceNotFoundException,
)
from moto.eks.models import Cluster, EKSBackend, Nodegroup  # noqa: E402
from moto.eks.responses import EKSResponse  # noqa: E402
from moto.moto_server.werkzeug_app import (  # noqa: E402
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server  # noqa: E402


class Knobs:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.create_seconds = 0.0
        self.create_seconds_by_kind: dict[str, float] = {}
        self.update_seconds: float | None = None
        self.delete_seconds = 0.0
        self.latency = (0.0, 0.0)  # seconds, uniform between the two
        self.throttle_rate = 0.0
        self.rng = random.Random()
        self.requests = 0
        self.throttled = 0
        self.deny_assume_role: list[str] = []
        self.log: collections.deque[dict[str, str]] = collections.deque(maxlen=2000)
        # (account, role of the caller's assumed-role session or "") -> IAM action -> count
        self.actions: dict[tuple[str, str], collections.Counter[str]] = {}

    def update(self, cfg: dict[str, Any]) -> None:
        unknown = set(cfg) - {
            "create_seconds", "create_seconds_by_kind", "update_seconds", "delete_seconds", "latency_ms",
            "throttle_rate", "seed", "deny_assume_role", "enforce_iam",
        }
        if unknown:
            raise ValueError(f"unknown knob(s): {', '.join(sorted(unknown))}")
        with self.lock:
            if "create_seconds" in cfg:
                self.create_seconds = _non_negative("create_seconds", cfg["create_seconds"])
            if "create_seconds_by_kind" in cfg:
                by_kind = cfg["create_seconds_by_kind"]
                unknown_kinds = set(by_kind) - set(KINDS)
                if unknown_kinds:
                    raise ValueError(f"unknown kind(s) {sorted(unknown_kinds)}: use {', '.join(KINDS)}")
                self.create_seconds_by_kind = {
                    k: _non_negative(f"create_seconds_by_kind.{k}", v) for k, v in by_kind.items()
                }
            if "update_seconds" in cfg:
                v = cfg["update_seconds"]
                self.update_seconds = None if v is None else _non_negative("update_seconds", v)
            if "delete_seconds" in cfg:
                self.delete_seconds = _non_negative("delete_seconds", cfg["delete_seconds"])
            if "latency_ms" in cfg:
                self.latency = _latency(str(cfg["latency_ms"]))
            if "throttle_rate" in cfg:
                rate = float(cfg["throttle_rate"])
                if not 0.0 <= rate <= 1.0:
                    raise ValueError(f"throttle_rate must be between 0 and 1, got {rate}")
                self.throttle_rate = rate
            if "deny_assume_role" in cfg:
                arns = cfg["deny_assume_role"]
                if not isinstance(arns, list) or not all(isinstance(a, str) for a in arns):
                    raise ValueError("deny_assume_role must be a list of role ARNs")
                self.deny_assume_role = arns
            if cfg.get("seed") is not None:
                self.rng.seed(int(cfg["seed"]))
            if "enforce_iam" in cfg:
                if "iam_enforcement" not in sys.modules:
                    raise ValueError("enforce_iam needs an emulator started with --iam-enforcement")
                sys.modules["iam_enforcement"].set_enforcing(bool(cfg["enforce_iam"]))

    def as_dict(self) -> dict[str, Any]:
        lo, hi = self.latency
        latency = f"{lo * 1000:g}" if lo == hi else f"{lo * 1000:g}-{hi * 1000:g}"
        return {
            "create_seconds": self.create_seconds,
            "create_seconds_by_kind": self.create_seconds_by_kind,
            "update_seconds": self.update_seconds,
            "delete_seconds": self.delete_seconds,
            "latency_ms": latency,
            "throttle_rate": self.throttle_rate,
            "deny_assume_role": self.deny_assume_role,
            "enforce_iam": "iam_enforcement" in sys.modules and sys.modules["iam_enforcement"].enforcing(),
        }

    def update_delay(self, kind: str) -> float:
        if self.update_seconds is not None:
            return self.update_seconds
        return self.create_seconds_by_kind.get(kind, self.create_seconds)

    def draw(self) -> tuple[float, bool]:
        """The delay and the throttling decision for one AWS request."""
        with self.lock:
            self.requests += 1
            lo, hi = self.latency
            delay = lo if lo == hi else self.rng.uniform(lo, hi)
            throttle = self.throttle_rate > 0 and self.rng.random() < self.throttle_rate
            if throttle:
                self.throttled += 1
            return delay, throttle


def _non_negative(name: str, value: Any) -> float:
    v = float(value)
    if v < 0:
        raise ValueError(f"{name} must be >= 0, got {v}")
    return v


def _latency(spec: str) -> tuple[float, float]:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(?:-\s*(\d+(?:\.\d+)?)\s*)?", spec)
    if not m:
        raise ValueError(f"latency_ms must be 'N' or 'MIN-MAX' milliseconds, got {spec!r}")
    lo = float(m.group(1)) / 1000
    hi = float(m.group(2)) / 1000 if m.group(2) else lo
    if hi < lo:
        raise ValueError(f"latency_ms range {spec!r} has MIN > MAX")
    return lo, hi


KINDS = ("nat_gateway", "eks_cluster", "eks_nodegroup")
KNOBS = Knobs()

# Deletions and updates that complete later: (due time, action). Run before each request is served, so a
# client can only ever observe the state it would see at that moment.
_due: list[tuple[float, Callable[[], None]]] = []
_due_lock = threading.Lock()


def _run_due() -> None:
    now = time.monotonic()
    with _due_lock:
        ready = [a for t, a in _due if t <= now]
        _due[:] = [(t, a) for t, a in _due if t > now]
    for action in ready:
        action()


class Timed:
    """Replaces a moto model's status attribute with one that reports a transitional value
    (CREATING, pending, DELETING, ...) until a deadline, then the value moto set."""

    def __init__(self, kind: str, name: str, creating: str) -> None:
        self.kind = kind
        self.key = f"_emulator_{name}"
        self.creating = creating

    def __get__(self, obj: Any, owner: Any = None) -> Any:
        if obj is None:
            return self
        value, label, until = obj.__dict__[self.key]
        return label if time.monotonic() < until else value

    def __set__(self, obj: Any, value: Any) -> None:
        if self.key in obj.__dict__:
            obj.__dict__[self.key] = (value, None, 0.0)
        else:  # moto's constructor: the resource is being created
            delay = KNOBS.create_seconds_by_kind.get(self.kind, KNOBS.create_seconds)
            obj.__dict__[self.key] = (value, self.creating, time.monotonic() + delay)

    def deleting(self, obj: Any, label: str, then: Callable[[], None]) -> bool:
        """Shows `label` for delete_seconds, then runs `then`. False when there is no delay
        (the caller deletes at once) or the object is already being deleted."""
        delay = KNOBS.delete_seconds
        current = obj.__dict__[self.key]
        if current[1] == label:
            return True
        if delay <= 0:
            return False
        until = time.monotonic() + delay
        obj.__dict__[self.key] = (current[0], label, until)
        with _due_lock:
            _due.append((until, then))
        return True

    def hold(self, obj: Any, label: str) -> None:
        """Shows `label` until `release`: an update ends in a due action that changes the
        resource and its status in one step, so no client sees ACTIVE with the old values."""
        obj.__dict__[self.key] = (obj.__dict__[self.key][0], label, math.inf)

    def release(self, obj: Any, label: str) -> None:
        value, current, _ = obj.__dict__[self.key]
        if current == label:  # not deleted meanwhile
            obj.__dict__[self.key] = (value, None, 0.0)


def _patch_cloudformation() -> None:
    """An `!If [cond, item, !Ref AWS::NoValue]` in a list drops the item, as in AWS (moto
    keeps a null there, and a policy statement list with a null is malformed)."""
    import moto.cloudformation.parsing as parsing

    clean_json = parsing.clean_json

    def clean_json_dropping_no_value(resource_json: Any, resources_map: Any) -> Any:
        if isinstance(resource_json, list):
            items = (clean_json_dropping_no_value(v, resources_map) for v in resource_json)
            return [v for v in items if v is not None]
        return clean_json(resource_json, resources_map)

    parsing.clean_json = clean_json_dropping_no_value


def _patch_action_log() -> None:
    """Counts every request moto handles as the IAM action it is (`{signing service}:{operation}`)
    by the account it acts in and the role of the assumed-role session that signed it."""
    from moto.core.responses import BaseResponse
    from moto.sts.models import sts_backends

    call_action = BaseResponse.call_action

    def recording_call_action(self: BaseResponse) -> Any:
        try:
            auth = self.headers.get("Authorization", "")
            m = _SERVICE.search(auth)
            key = auth.partition("Credential=")[2].partition("/")[0]
            account = self.current_account
            role = ""
            if key:
                assumed = sts_backends[account]["aws"].get_assumed_role_from_access_key(key)
                if assumed is not None:
                    role = assumed.role_arn.rsplit("/", 1)[-1]
            action = self._get_action()
            if m and action:
                with KNOBS.lock:
                    counts = KNOBS.actions.setdefault((account, role), collections.Counter())
                    counts[f"{m.group(1)}:{action}"] += 1
        except Exception:  # noqa: BLE001 - the log must never break a request
            pass
        return call_action(self)

    BaseResponse.call_action = recording_call_action


def _patch_nodegroup_tags() -> None:
    """EKS TagResource / UntagResource of a node group's ARN (moto tags clusters only)."""
    tag_resource = EKSBackend.tag_resource
    untag_resource = EKSBackend.untag_resource

    def nodegroup_by_arn(backend: EKSBackend, arn: str) -> Nodegroup | None:
        for cluster in backend.clusters.values():
            for nodegroup in cluster.nodegroups.values():
                if nodegroup.arn == arn:
                    return nodegroup
        return None

    def eks_tag_resource(self: EKSBackend, resource_arn: str, tags: dict[str, str]) -> None:
        nodegroup = nodegroup_by_arn(self, resource_arn)
        if nodegroup is None:
            return tag_resource(self, resource_arn, tags)
        nodegroup.tags.update(tags)

    def eks_untag_resource(self: EKSBackend, resource_arn: str, tag_keys: list[str]) -> None:
        nodegroup = nodegroup_by_arn(self, resource_arn)
        if nodegroup is None:
            return untag_resource(self, resource_arn, tag_keys)
        for key in tag_keys if isinstance(tag_keys, list) else [tag_keys]:
            nodegroup.tags.pop(key, None)

    EKSBackend.tag_resource = eks_tag_resource
    EKSBackend.untag_resource = eks_untag_resource


def _patch_moto() -> None:
    _patch_cloudformation()
    _patch_action_log()
    _patch_nodegroup_tags()
    cluster_status = Timed("eks_cluster", "status", "CREATING")
    nodegroup_status = Timed("eks_nodegroup", "status", "CREATING")
    nat_state = Timed("nat_gateway", "state", "pending")
    Cluster.status = cluster_status
    Nodegroup.status = nodegroup_status
    NatGateway.state = nat_state

    delete_cluster = EKSBackend.delete_cluster
    delete_nodegroup = EKSBackend.delete_nodegroup
    delete_nat_gateway = NatGatewayBackend.delete_nat_gateway

    def eks_delete_cluster(self: EKSBackend, name: str) -> Cluster:
        cluster = self.clusters.get(name)
        if cluster is None or cluster.nodegroups:
            return delete_cluster(self, name)  # moto's own errors
        if cluster_status.deleting(cluster, "DELETING", lambda: delete_cluster(self, name)):
            return cluster
        return delete_cluster(self, name)

    def eks_delete_nodegroup(self: EKSBackend, cluster_name: str, nodegroup_name: str) -> Nodegroup:
        cluster = self.clusters.get(cluster_name)
        nodegroup = cluster.nodegroups.get(nodegroup_name) if cluster else None
        if nodegroup is not None and nodegroup_status.deleting(
            nodegroup, "DELETING", lambda: delete_nodegroup(self, cluster_name, nodegroup_name)
        ):
            return nodegroup
        return delete_nodegroup(self, cluster_name, nodegroup_name)

    def release_nat_gateway(self: Any, nat_gateway_id: str) -> NatGateway:
        # AWS frees a deleted NAT gateway's Elastic IP and network interface; moto keeps
        # them, so a new gateway on the same address fails with Resource.AlreadyAssociated.
        nat = delete_nat_gateway(self, nat_gateway_id)
        eni = getattr(nat, "_eni", None)
        if eni is not None:
            for eip in list(self.addresses):
                if eip.eni is eni:
                    self.disassociate_address(association_id=eip.association_id)
            self.enis.pop(eni.id, None)
        return nat

    def ec2_delete_nat_gateway(self: NatGatewayBackend, nat_gateway_id: str) -> NatGateway:
        nat = self.nat_gateways.get(nat_gateway_id)
        if nat is not None and nat_state.deleting(
            nat, "deleting", lambda: release_nat_gateway(self, nat_gateway_id)
        ):
            return nat
        return release_nat_gateway(self, nat_gateway_id)

    # moto drops EKS Auto Mode's computeConfig and storageConfig; AWS keeps and describes
    # them, and byoc reads them back (a cluster without them would show as drift).
    create_cluster = EKSResponse.create_cluster

    def eks_create_cluster(self: EKSResponse) -> Any:
        result = create_cluster(self)
        cluster = self.eks_backend.clusters.get(self._get_param("name"))
        if cluster is not None:
            for param, attr in (("computeConfig", "compute_config"), ("storageConfig", "storage_config")):
                if self._get_param(param) is not None:
                    setattr(cluster, attr, self._get_param(param))
        return result

    # UpdateClusterConfig changes the fields it is given (endpoint access, say); moto
    # replaces the whole resourcesVpcConfig with them, losing the subnets.
    update_cluster_config = EKSBackend.update_cluster_config

    def eks_update_cluster_config(self: EKSBackend, name: str, resources_vpc_config: Any, *args: Any, **kwargs: Any) -> Cluster:
        cluster = self.clusters.get(name)
        if cluster is not None and resources_vpc_config:
            resources_vpc_config = {**(cluster.resources_vpc_config or {}), **resources_vpc_config}
        return update_cluster_config(self, name, resources_vpc_config, *args, **kwargs)

    # moto gives every cluster of a process the same OIDC issuer; AWS gives each its own,
    # and two clusters of one account would otherwise share one IAM OIDC provider.
    cluster_init = Cluster.__init__

    def cluster_init_own_issuer(self: Cluster, *args: Any, **kwargs: Any) -> None:
        cluster_init(self, *args, **kwargs)
        issuer = self.identity["oidc"]["issuer"]
        self.identity = {"oidc": {"issuer": issuer.rsplit("/", 1)[0] + "/" + os.urandom(16).hex().upper()}}

    Cluster.__init__ = cluster_init_own_issuer
    EKSResponse.create_cluster = eks_create_cluster
    EKSBackend.update_cluster_config = eks_update_cluster_config
    _patch_eks_updates(cluster_status, nodegroup_status)
    EKSBackend.delete_cluster = eks_delete_cluster
    EKSBackend.delete_nodegroup = eks_delete_nodegroup
    NatGatewayBackend.delete_nat_gateway = ec2_delete_nat_gateway


# moto's defaults are Kubernetes 1.19 for clusters and node groups alike; AWS creates a cluster
# at a current version and a node group at its cluster's, with that version's AMI release.
DEFAULT_KUBERNETES_VERSION = "1.32"
AMI_RELEASE_DATE = "20250715"


def _release_version(version: str) -> str:
    return f"{version}.0-{AMI_RELEASE_DATE}"


def _minor(version: Any) -> tuple[int, int]:
    m = re.fullmatch(r"(\d+)\.(\d+)", str(version))
    if not m:
        raise InvalidParameterException(message=f"Unsupported Kubernetes version {version}")
    return int(m.group(1)), int(m.group(2))


def _refuse_above_cluster(version: str, cluster: Cluster, **names: str) -> None:
    if _minor(version) > _minor(cluster.version):
        raise InvalidParameterException(
            message=f"Requested Nodegroup Kubernetes version {version} is greater than the cluster version "
            f"{cluster.version}",
            **names,
        )


def _updates(obj: Any) -> list[dict[str, Any]]:
    return obj.__dict__.setdefault("_emulator_updates", [])


def _refuse_busy(obj: Any, what: str, **names: str) -> None:
    """AWS runs one update at a time per cluster or node group, and none before it is ACTIVE."""
    if any(u["status"] == "InProgress" for u in _updates(obj)):
        raise ResourceInUseException(message=f"{what} has an update in progress", **names)
    if obj.status != "ACTIVE":
        raise ResourceInUseException(message=f"{what} is in {obj.status} status", **names)


def _start_update(
    obj: Any, status: Timed, kind: str, update_type: str, params: list[dict[str, str]], apply: Callable[[], None]
) -> dict[str, Any]:
    """Records an update, shows UPDATING for the kind's update delay, then applies it; gives
    back the update as the request answers it (InProgress, even without a delay, as AWS)."""
    update: dict[str, Any] = {
        "id": str(uuid.uuid4()), "status": "InProgress", "type": update_type, "params": params,
        "createdAt": utcnow(), "errors": [],
    }
    answer = dict(update)
    _updates(obj).append(update)

    def finish() -> None:
        apply()
        update["status"] = "Successful"
        status.release(obj, "UPDATING")

    delay = KNOBS.update_delay(kind)
    if delay <= 0:
        finish()
    else:
        status.hold(obj, "UPDATING")
        with _due_lock:
            _due.append((time.monotonic() + delay, finish))
    return answer


def _param(kind: str, value: Any) -> dict[str, str]:
    return {"type": kind, "value": value if isinstance(value, str) else json.dumps(value)}


# UpdateClusterConfig: the update type of each request field (AWS takes one type per call).
_CLUSTER_CONFIG_TYPES = {
    "resourcesVpcConfig": "EndpointAccessUpdate", "logging": "LoggingUpdate", "accessConfig": "AccessConfigUpdate",
    "upgradePolicy": "UpgradePolicyUpdate", "zonalShiftConfig": "ZonalShiftConfigUpdate",
    "computeConfig": "AutoModeUpdate", "storageConfig": "AutoModeUpdate", "kubernetesNetworkConfig": "AutoModeUpdate",
    "remoteNetworkConfig": "RemoteNetworkConfigUpdate", "deletionProtection": "DeletionProtectionUpdate",
}
_VPC_PARAMS = {
    "endpointPublicAccess": "EndpointPublicAccess", "endpointPrivateAccess": "EndpointPrivateAccess",
    "publicAccessCidrs": "PublicAccessCidrs", "subnetIds": "Subnets", "securityGroupIds": "SecurityGroups",
}
_SCALING_PARAMS = {"minSize": "MinSize", "maxSize": "MaxSize", "desiredSize": "DesiredSize"}


def _patch_eks_updates(cluster_status: Timed, nodegroup_status: Timed) -> None:
    """EKS updates as AWS runs them. moto has no UpdateClusterVersion, UpdateNodegroupVersion,
    DescribeUpdate or ListUpdates; its UpdateNodegroupConfig and UpdateClusterConfig apply at
    once and are never in progress, and UpdateClusterConfig answers the cluster, not an update."""
    eks_models.DEFAULT_KUBERNETES_VERSION = DEFAULT_KUBERNETES_VERSION
    eks_urls.url_paths.update({
        "{0}/clusters/(?P<name>[^/]+)/updates$": eks_urls.response.dispatch,
        "{0}/clusters/(?P<name>[^/]+)/updates/(?P<updateId>[^/]+)$": eks_urls.response.dispatch,
        "{0}/clusters/(?P<name>[^/]+)/node-groups/(?P<nodegroupName>[^/]+)/update-version$": eks_urls.response.dispatch,
    })

    def nodegroup_of(cluster: Cluster, name: str) -> Nodegroup:
        nodegroup = cluster.nodegroups.get(name)
        if nodegroup is None:
            raise ResourceNotFoundException(
                clusterName=cluster.name, nodegroupName=name, message=f"No node group found for name: {name}."
            )
        return nodegroup

    create_nodegroup = EKSBackend.create_nodegroup

    def eks_create_nodegroup(
        self: EKSBackend, cluster_name: str, *args: Any, version: str | None = None,
        release_version: str | None = None, **kwargs: Any,
    ) -> Nodegroup:
        cluster = self.clusters.get(cluster_name)
        if cluster is not None:
            if version is not None:
                _refuse_above_cluster(version, cluster, clusterName=cluster_name)
            version = version or cluster.version
            release_version = release_version or _release_version(version)
        return create_nodegroup(self, cluster_name, *args, version=version, release_version=release_version, **kwargs)

    def update_cluster_version(self: EKSResponse) -> ActionResult:
        name = self._get_param("name")
        version = str(self._get_param("version"))
        cluster = self.eks_backend.describe_cluster(name=name)  # moto's 404
        current = cluster.version
        (major, minor), (new_major, new_minor) = _minor(current), _minor(version)
        if (new_major, new_minor) != (major, minor + 1):
            raise InvalidParameterException(
                clusterName=name, message=f"Unsupported Kubernetes minor version update from {current} to {version}"
            )
        _refuse_busy(cluster, f"Cluster {name}", clusterName=name)
        platform = "eks.1"  # the first platform version of each new minor

        def apply() -> None:
            cluster.version = version
            cluster.platformVersion = platform

        params = [_param("Version", version), _param("PlatformVersion", platform)]
        update = _start_update(cluster, cluster_status, "eks_cluster", "VersionUpdate", params, apply)
        return ActionResult({"update": update})

    def update_cluster_config(self: EKSResponse) -> ActionResult:
        name = self._get_param("name")
        cluster = self.eks_backend.describe_cluster(name=name)
        given = {k: self._get_param(k) for k in _CLUSTER_CONFIG_TYPES if self._get_param(k) is not None}
        vpc = given.get("resourcesVpcConfig") or {}
        types = {
            "VpcConfigUpdate" if k == "resourcesVpcConfig" and ({"subnetIds", "securityGroupIds"} & set(vpc))
            else _CLUSTER_CONFIG_TYPES[k]
            for k in given
        }
        if len(types) != 1:
            raise InvalidParameterException(
                clusterName=name, message="Only one type of update can be allowed." if types else "No changes needed"
            )
        _refuse_busy(cluster, f"Cluster {name}", clusterName=name)
        params = [_param(p, vpc[k]) for k, p in _VPC_PARAMS.items() if k in vpc]
        for k, v in given.items():
            if k == "accessConfig":
                params += [_param("AuthenticationMode", v["authenticationMode"])] if "authenticationMode" in v else []
            elif k != "resourcesVpcConfig":
                params.append(_param("ClusterLogging" if k == "logging" else k[0].upper() + k[1:], v))
        backend = self.eks_backend

        def apply() -> None:
            backend.update_cluster_config(
                name=name, resources_vpc_config=given.get("resourcesVpcConfig"), logging=given.get("logging"),
                kubernetes_network_config=given.get("kubernetesNetworkConfig"),
                remote_network_config=given.get("remoteNetworkConfig"),
            )
            # Auto Mode's configs are kept at creation (eks_create_cluster), so at an update too.
            for param, attr in (("computeConfig", "compute_config"), ("storageConfig", "storage_config")):
                if param in given:
                    setattr(cluster, attr, given[param])

        update = _start_update(cluster, cluster_status, "eks_cluster", types.pop(), params, apply)
        return ActionResult({"update": update})

    def update_nodegroup_version(self: EKSResponse) -> ActionResult:
        name = self._get_param("name")
        cluster = self.eks_backend.describe_cluster(name=name)
        ng_name = self._get_param("nodegroupName")
        nodegroup = nodegroup_of(cluster, ng_name)
        version = str(self._get_param("version") or cluster.version)
        _refuse_above_cluster(version, cluster, clusterName=name, nodegroupName=ng_name)
        if _minor(version) < _minor(nodegroup.version):
            raise InvalidParameterException(
                clusterName=name, nodegroupName=ng_name,
                message=f"Requested Nodegroup Kubernetes version {version} is lower than {nodegroup.version}",
            )
        _refuse_busy(cluster, f"Cluster {name}", clusterName=name)
        _refuse_busy(nodegroup, f"Nodegroup {ng_name}", clusterName=name, nodegroupName=ng_name)
        release = str(self._get_param("releaseVersion") or _release_version(version))
        template = self._get_param("launchTemplate")
        params = [_param("Version", version), _param("ReleaseVersion", release)]
        if template:
            params += [
                _param("LaunchTemplateName", template.get("name") or template.get("id")),
                _param("LaunchTemplateVersion", str(template.get("version", "$Default"))),
            ]

        def apply() -> None:
            nodegroup.version, nodegroup.release_version, nodegroup.modified_at = version, release, utcnow()
            if template:
                nodegroup.launch_template = {**(nodegroup.launch_template or {}), **template}

        update = _start_update(nodegroup, nodegroup_status, "eks_nodegroup", "VersionUpdate", params, apply)
        return ActionResult({"update": update})

    moto_update_nodegroup_config = EKSBackend.update_nodegroup_config

    def update_nodegroup_config(self: EKSResponse) -> ActionResult:
        name = self._get_param("name")
        cluster = self.eks_backend.describe_cluster(name=name)
        ng_name = self._get_param("nodegroupName")
        nodegroup = nodegroup_of(cluster, ng_name)
        scaling = self._get_param("scalingConfig") or {}
        labels = self._get_param("labels") or {}
        taints = self._get_param("taints") or {}
        update_config = self._get_param("updateConfig")
        repair = self._get_param("nodeRepairConfig")
        merged = {**nodegroup.scaling_config, **scaling}
        lo, want, hi = merged.get("minSize", 0), merged.get("desiredSize", 0), merged.get("maxSize", 1)
        if hi < 1 or lo > hi or not lo <= want <= hi:
            raise InvalidParameterException(
                clusterName=name, nodegroupName=ng_name,
                message=f"Desired size {want} must be between the minimum size {lo} and the maximum size {hi} (>= 1)",
            )
        _refuse_busy(nodegroup, f"Nodegroup {ng_name}", clusterName=name, nodegroupName=ng_name)
        params = [_param(p, str(scaling[k])) for k, p in _SCALING_PARAMS.items() if k in scaling]
        for key, kind in (("addOrUpdateLabels", "LabelsToAdd"), ("removeLabels", "LabelsToRemove")):
            if labels.get(key):
                params.append(_param(kind, labels[key]))
        for key, kind in (("addOrUpdateTaints", "TaintsToAdd"), ("removeTaints", "TaintsToRemove")):
            if taints.get(key):
                params.append(_param(kind, taints[key]))
        for key in ("maxUnavailable", "maxUnavailablePercentage"):
            if (update_config or {}).get(key) is not None:
                params.append(_param(key[0].upper() + key[1:], str(update_config[key])))
        if repair is not None:
            params.append(_param("NodeRepairEnabled", json.dumps(bool(repair.get("enabled")))))
        backend = self.eks_backend

        def apply() -> None:
            # A fresh dict: moto's update() would change its shared default scaling config.
            nodegroup.scaling_config = merged
            moto_update_nodegroup_config(
                backend, name, ng_name, labels=labels, taints=taints, update_config=update_config,
                node_repair_config=repair,
            )

        update = _start_update(nodegroup, nodegroup_status, "eks_nodegroup", "ConfigUpdate", params, apply)
        return ActionResult({"update": update})

    def updates_of(self: EKSResponse) -> tuple[str, Any]:
        name = self._get_param("name")
        cluster = self.eks_backend.describe_cluster(name=name)
        ng_name = self._get_param("nodegroupName")
        return name, nodegroup_of(cluster, ng_name) if ng_name else cluster

    def describe_update(self: EKSResponse) -> ActionResult:
        name, obj = updates_of(self)
        update_id = self._get_param("updateId")
        for update in _updates(obj):
            if update["id"] == update_id:
                return ActionResult({"update": update})
        raise ResourceNotFoundException(clusterName=name, message=f"No update found for ID: {update_id}")

    def list_updates(self: EKSResponse) -> ActionResult:
        _, obj = updates_of(self)
        ids = [u["id"] for u in _updates(obj)]
        start = int(self._get_param("nextToken") or 0)
        end = start + int(self._get_param("maxResults") or 100)
        return ActionResult({"updateIds": ids[start:end], "nextToken": str(end) if end < len(ids) else None})

    EKSBackend.create_nodegroup = eks_create_nodegroup
    EKSResponse.update_cluster_version = update_cluster_version
    EKSResponse.update_cluster_config = update_cluster_config
    EKSResponse.update_nodegroup_version = update_nodegroup_version
    EKSResponse.update_nodegroup_config = update_nodegroup_config
    EKSResponse.describe_update = describe_update
    EKSResponse.list_updates = list_updates


_SERVICE = re.compile(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/")


def _throttle_response(environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
    m = _SERVICE.search(environ.get("HTTP_AUTHORIZATION", ""))
    service = m.group(1) if m else ""
    request_id = f"{random.getrandbits(128):032x}"
    if service == "ec2":
        body = (
            "<Response><Errors><Error><Code>RequestLimitExceeded</Code>"
            "<Message>Request limit exceeded.</Message></Error></Errors>"
            f"<RequestID>{request_id}</RequestID></Response>"
        )
        return "503 Service Unavailable", [("Content-Type", "text/xml")], body.encode()
    content_type = environ.get("CONTENT_TYPE", "")
    if "HTTP_X_AMZ_TARGET" in environ or "json" in content_type or service == "eks":
        body = json.dumps({"__type": "Throttling", "message": "Rate exceeded"})
        headers = [
            ("Content-Type", "application/json"),
            ("x-amzn-ErrorType", "Throttling"),
            ("x-amzn-RequestId", request_id),
        ]
        return "400 Bad Request", headers, body.encode()
    body = (
        "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code>"
        f"<Message>Rate exceeded</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
    )
    return "400 Bad Request", [("Content-Type", "text/xml")], body.encode()


def _record(environ: dict[str, Any]) -> tuple[str, str]:
    """Logs the request and gives back (service, body); the body stays readable for moto."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    raw = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(raw)
    m = _SERVICE.search(environ.get("HTTP_AUTHORIZATION", ""))
    service = m.group(1) if m else ""
    body = raw[:65536].decode("utf-8", "replace")
    query = environ.get("QUERY_STRING", "")
    with KNOBS.lock:
        KNOBS.log.append({
            "service": service,
            "method": environ.get("REQUEST_METHOD", ""),
            "path": environ.get("PATH_INFO", "") + (f"?{query}" if query else ""),
            "body": body,
        })
    return service, body


def _denied_assume_role(service: str, body: str) -> bytes | None:
    if service != "sts" or "Action=AssumeRole" not in body:
        return None
    from urllib.parse import parse_qs

    arn = parse_qs(body).get("RoleArn", [""])[0]
    with KNOBS.lock:
        denied = arn in KNOBS.deny_assume_role
    if not denied:
        return None
    return (
        "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code>"
        f"<Message>User: arn:aws:iam::123456789012:user/platform is not authorized to perform: "
        f"sts:AssumeRole on resource: {arn}</Message></Error>"
        f"<RequestId>{random.getrandbits(128):032x}</RequestId></ErrorResponse>"
    ).encode()


class Emulator:
    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_emulator/"):
            return self.control(environ, start_response, path)
        _run_due()
        if not path.startswith("/moto-api"):
            service, body = _record(environ)
            denied = _denied_assume_role(service, body)
            if denied:
                start_response("403 Forbidden", [("Content-Type", "text/xml"), ("Content-Length", str(len(denied)))])
                return [denied]
            delay, throttle = KNOBS.draw()
            if delay:
                time.sleep(delay)
            if throttle:
                status, headers, body = _throttle_response(environ)
                start_response(status, headers + [("Content-Length", str(len(body)))])
                return [body]
        return self.app(environ, start_response)

    def control(self, environ: dict[str, Any], start_response: Any, path: str) -> Any:
        method = environ.get("REQUEST_METHOD")
        status = "200 OK"
        if path == "/_emulator/config" and method == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            try:
                KNOBS.update(json.loads(environ["wsgi.input"].read(length) or b"{}"))
                payload: dict[str, Any] = KNOBS.as_dict()
            except (ValueError, TypeError) as e:
                status, payload = "400 Bad Request", {"error": "bad_knob", "message": str(e)}
        elif path == "/_emulator/config":
            payload = KNOBS.as_dict()
        elif path == "/_emulator/requests":
            from urllib.parse import parse_qs

            wanted = parse_qs(environ.get("QUERY_STRING", "")).get("service", [None])[0]
            with KNOBS.lock:
                entries = [e for e in KNOBS.log if wanted is None or e["service"] == wanted]
            payload = {"requests": entries}
        elif path == "/_emulator/actions":
            from urllib.parse import parse_qs

            query = parse_qs(environ.get("QUERY_STRING", ""))
            account = query.get("account", [""])[0]
            role = query.get("role", [None])[0]
            total: collections.Counter[str] = collections.Counter()
            with KNOBS.lock:
                for (a, r), counts in KNOBS.actions.items():
                    if a == account and (role is None or r == role):
                        total.update(counts)
            payload = {"actions": dict(sorted(total.items()))}
        elif path == "/_emulator/stats":
            payload = {"requests": KNOBS.requests, "throttled": KNOBS.throttled}
        else:
            status, payload = "404 Not Found", {"error": "not_found", "message": path}
        body = json.dumps(payload).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]


def _exit_with_parent() -> None:
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5000, help="0 picks a free port")
    p.add_argument("--create-seconds", type=float, default=0.0)
    p.add_argument("--update-seconds", type=float, help="default: the kind's create delay")
    p.add_argument("--delete-seconds", type=float, default=0.0)
    p.add_argument("--latency-ms", default="0", help="N or MIN-MAX")
    p.add_argument("--throttle-rate", type=float, default=0.0)
    p.add_argument("--seed", type=int)
    p.add_argument("--exit-with-parent", action="store_true")
    p.add_argument("--iam-enforcement", action="store_true",
                   help="evaluate IAM policies (iam_enforcement.py) once enforce_iam is set")
    args = p.parse_args(argv)
    try:
        KNOBS.update(
            {
                "create_seconds": args.create_seconds,
                "update_seconds": args.update_seconds,
                "delete_seconds": args.delete_seconds,
                "latency_ms": args.latency_ms,
                "throttle_rate": args.throttle_rate,
                "seed": args.seed,
            }
        )
    except ValueError as e:
        p.error(str(e))
    if args.exit_with_parent:
        _exit_with_parent()
    _patch_moto()
    if args.iam_enforcement:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import iam_enforcement

        iam_enforcement.install()
    app = Emulator(DomainDispatcherApplication(create_backend_app))
    server = make_server(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)
    print(f"listening on http://{args.host}:{server.server_port}", flush=True)
    sys.stdout.flush()
    server.serve_forever()


if __name__ == "__main__":
    main()
