"""The emulator's departures from moto against boto3: EKS updates as byoc's day-2 changes
drive them, node group tags, and CloudFormation's AWS::NoValue in lists.

Run: .venv/bin/python tools/emulator/test_emulator.py   (from the workspace root; -v for names)

Starts emulator.py as the Rust testkit does (--port 0 --exit-with-parent, the first line gives
the endpoint) with a short update delay, so the UPDATING state and InProgress updates are seen.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import unittest
import urllib.request
from pathlib import Path
from typing import Any, Callable

import boto3
from botocore.exceptions import ClientError

EMULATOR = Path(__file__).with_name("emulator.py")
UPDATE_SECONDS = 1.0
ROLE = "arn:aws:iam::123456789012:role/eks"
VPC = {"subnetIds": ["subnet-1", "subnet-2"], "endpointPublicAccess": True, "endpointPrivateAccess": False}


class EmulatorEks(unittest.TestCase):
    proc: subprocess.Popen[str]
    endpoint: str
    eks: Any

    @classmethod
    def setUpClass(cls) -> None:
        cls.proc = subprocess.Popen(
            [sys.executable, str(EMULATOR), "--host", "127.0.0.1", "--port", "0", "--exit-with-parent",
             f"--update-seconds={UPDATE_SECONDS}"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True,
        )
        assert cls.proc.stdout is not None
        line = cls.proc.stdout.readline().strip()
        if not line.startswith("listening on "):
            cls.proc.kill()
            raise RuntimeError(f"emulator did not start: {line!r}")
        cls.endpoint = line.removeprefix("listening on ")
        cls.eks = boto3.client(
            "eks", endpoint_url=cls.endpoint, region_name="us-east-1",
            aws_access_key_id="testing", aws_secret_access_key="testing",
        )

    @classmethod
    def tearDownClass(cls) -> None:
        cls.proc.terminate()
        cls.proc.wait(timeout=10)

    def configure(self, knobs: dict[str, Any]) -> dict[str, Any]:
        req = urllib.request.Request(
            f"{self.endpoint}/_emulator/config", data=json.dumps(knobs).encode(), method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req) as r:
            return json.load(r)

    def refused(self, code: str, call: Callable[[], Any]) -> str:
        with self.assertRaises(ClientError) as e:
            call()
        self.assertEqual(e.exception.response["Error"]["Code"], code, e.exception.response)
        return str(e.exception.response["Error"].get("Message", ""))

    def wait_until(self, what: str, check: Callable[[], bool], timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                self.fail(f"timed out waiting for {what}")
            time.sleep(0.1)

    def cluster(self, name: str) -> dict[str, Any]:
        return self.eks.describe_cluster(name=name)["cluster"]

    def nodegroup(self, cluster: str, name: str) -> dict[str, Any]:
        return self.eks.describe_nodegroup(clusterName=cluster, nodegroupName=name)["nodegroup"]

    def test_versions_and_config_updates(self) -> None:
        eks = self.eks
        eks.create_cluster(name="day2", version="1.31", roleArn=ROLE, resourcesVpcConfig=VPC)
        self.assertEqual(self.cluster("day2")["status"], "ACTIVE")

        # A node group without a version takes the cluster's, and an AMI release of it.
        ng = eks.create_nodegroup(clusterName="day2", nodegroupName="ng", nodeRole=ROLE, subnets=["subnet-1"])["nodegroup"]
        self.assertEqual(ng["version"], "1.31")
        self.assertTrue(ng["releaseVersion"].startswith("1.31."), ng["releaseVersion"])
        msg = self.refused("InvalidParameterException", lambda: eks.create_nodegroup(
            clusterName="day2", nodegroupName="ahead", nodeRole=ROLE, subnets=["subnet-1"], version="1.32"))
        self.assertIn("1.32", msg)

        # 1.31 -> 1.32: an update id, UPDATING at the old version, then ACTIVE at the new one.
        update = eks.update_cluster_version(name="day2", version="1.32")["update"]
        self.assertEqual((update["status"], update["type"]), ("InProgress", "VersionUpdate"))
        self.assertIn({"type": "Version", "value": "1.32"}, update["params"])
        self.assertIn("PlatformVersion", [p["type"] for p in update["params"]])
        self.assertIn("createdAt", update)
        c = self.cluster("day2")
        self.assertEqual((c["status"], c["version"]), ("UPDATING", "1.31"))
        described = eks.describe_update(name="day2", updateId=update["id"])["update"]
        self.assertEqual(described["status"], "InProgress")
        self.refused("ResourceInUseException", lambda: eks.update_cluster_version(name="day2", version="1.32"))
        self.refused("ResourceInUseException", lambda: eks.update_cluster_config(
            name="day2", resourcesVpcConfig={"endpointPrivateAccess": True}))
        self.wait_until("cluster ACTIVE", lambda: self.cluster("day2")["status"] == "ACTIVE")
        self.assertEqual(self.cluster("day2")["version"], "1.32")
        self.assertEqual(eks.describe_update(name="day2", updateId=update["id"])["update"]["status"], "Successful")
        self.assertEqual(eks.list_updates(name="day2")["updateIds"], [update["id"]])

        # AWS moves one minor version at a time, and only forward.
        msg = self.refused("InvalidParameterException", lambda: eks.update_cluster_version(name="day2", version="1.34"))
        self.assertIn("Unsupported Kubernetes minor version update from 1.32 to 1.34", msg)
        self.refused("InvalidParameterException", lambda: eks.update_cluster_version(name="day2", version="1.32"))
        self.refused("InvalidParameterException", lambda: eks.update_cluster_version(name="day2", version="1.31"))
        self.refused("ResourceNotFoundException", lambda: eks.update_cluster_version(name="nope", version="1.32"))

        # The node group: never above the cluster; by default to the cluster's version.
        msg = self.refused("InvalidParameterException", lambda: eks.update_nodegroup_version(
            clusterName="day2", nodegroupName="ng", version="1.33"))
        self.assertIn("1.33", msg)
        update = eks.update_nodegroup_version(clusterName="day2", nodegroupName="ng")["update"]
        self.assertEqual((update["status"], update["type"]), ("InProgress", "VersionUpdate"))
        self.assertIn({"type": "Version", "value": "1.32"}, update["params"])
        ng = self.nodegroup("day2", "ng")
        self.assertEqual((ng["status"], ng["version"]), ("UPDATING", "1.31"))
        self.refused("ResourceInUseException", lambda: eks.update_nodegroup_config(
            clusterName="day2", nodegroupName="ng", scalingConfig={"desiredSize": 3, "maxSize": 3}))
        self.wait_until("node group ACTIVE", lambda: self.nodegroup("day2", "ng")["status"] == "ACTIVE")
        ng = self.nodegroup("day2", "ng")
        self.assertEqual(ng["version"], "1.32")
        self.assertTrue(ng["releaseVersion"].startswith("1.32."), ng["releaseVersion"])
        described = eks.describe_update(name="day2", nodegroupName="ng", updateId=update["id"])["update"]
        self.assertEqual(described["status"], "Successful")
        # A node group's update is the node group's, not the cluster's.
        self.refused("ResourceNotFoundException", lambda: eks.describe_update(name="day2", updateId=update["id"]))

        # UpdateNodegroupConfig: scaling and labels, UPDATING, then applied.
        self.refused("InvalidParameterException", lambda: eks.update_nodegroup_config(
            clusterName="day2", nodegroupName="ng", scalingConfig={"desiredSize": 5}))
        update = eks.update_nodegroup_config(
            clusterName="day2", nodegroupName="ng", scalingConfig={"minSize": 1, "desiredSize": 3, "maxSize": 4},
            labels={"addOrUpdateLabels": {"tier": "web"}},
        )["update"]
        self.assertEqual((update["status"], update["type"]), ("InProgress", "ConfigUpdate"))
        self.assertIn({"type": "DesiredSize", "value": "3"}, update["params"])
        self.assertIn("LabelsToAdd", [p["type"] for p in update["params"]])
        ng = self.nodegroup("day2", "ng")
        self.assertEqual((ng["status"], ng["scalingConfig"]["desiredSize"]), ("UPDATING", 2))
        self.wait_until("node group ACTIVE", lambda: self.nodegroup("day2", "ng")["status"] == "ACTIVE")
        ng = self.nodegroup("day2", "ng")
        self.assertEqual(ng["scalingConfig"], {"minSize": 1, "desiredSize": 3, "maxSize": 4})
        self.assertEqual(ng["labels"], {"tier": "web"})
        ids = eks.list_updates(name="day2", nodegroupName="ng")["updateIds"]
        self.assertEqual(len(ids), 2)
        self.assertEqual(eks.describe_update(name="day2", nodegroupName="ng", updateId=update["id"])["update"]["status"],
                         "Successful")
        # moto's default scaling config is one shared dict: the change above must not leak.
        other = eks.create_nodegroup(clusterName="day2", nodegroupName="other", nodeRole=ROLE, subnets=["subnet-1"])
        self.assertEqual(other["nodegroup"]["scalingConfig"], {"minSize": 2, "maxSize": 2, "desiredSize": 2})

        # UpdateClusterConfig answers an update and changes only the fields it is given.
        update = eks.update_cluster_config(name="day2", resourcesVpcConfig={"endpointPrivateAccess": True})["update"]
        self.assertEqual((update["status"], update["type"]), ("InProgress", "EndpointAccessUpdate"))
        self.assertIn({"type": "EndpointPrivateAccess", "value": "true"}, update["params"])
        self.wait_until("cluster ACTIVE", lambda: self.cluster("day2")["status"] == "ACTIVE")
        vpc = self.cluster("day2")["resourcesVpcConfig"]
        self.assertEqual((vpc["subnetIds"], vpc["endpointPrivateAccess"]), (VPC["subnetIds"], True))
        self.refused("InvalidParameterException", lambda: eks.update_cluster_config(
            name="day2", resourcesVpcConfig={"endpointPrivateAccess": False},
            logging={"clusterLogging": [{"types": ["api"], "enabled": True}]}))

    def test_defaults_and_delays(self) -> None:
        eks = self.eks
        c = eks.create_cluster(name="plain", roleArn=ROLE, resourcesVpcConfig=VPC)["cluster"]
        self.assertNotEqual(c["version"], "1.19")  # moto's default; AWS creates a current version
        self.assertGreaterEqual(tuple(map(int, c["version"].split("."))), (1, 31))
        # Without update_seconds an update lasts as long as the kind's creation.
        knobs = self.configure({"update_seconds": None, "create_seconds_by_kind": {"eks_cluster": 1}})
        try:
            self.assertIsNone(knobs["update_seconds"])
            eks.create_cluster(name="slow", version="1.31", roleArn=ROLE, resourcesVpcConfig=VPC)
            self.assertEqual(self.cluster("slow")["status"], "CREATING")
            self.refused("ResourceInUseException", lambda: eks.update_cluster_version(name="slow", version="1.32"))
            self.wait_until("cluster ACTIVE", lambda: self.cluster("slow")["status"] == "ACTIVE")
            eks.update_cluster_version(name="slow", version="1.32")
            self.assertEqual(self.cluster("slow")["status"], "UPDATING")
            self.wait_until("cluster ACTIVE", lambda: self.cluster("slow")["status"] == "ACTIVE")
            self.assertEqual(self.cluster("slow")["version"], "1.32")
        finally:
            self.configure({"update_seconds": UPDATE_SECONDS, "create_seconds_by_kind": {}})
        # Without a delay the change is there at once, the answer still InProgress as AWS's.
        self.configure({"update_seconds": 0})
        try:
            update = eks.update_cluster_version(name="slow", version="1.33")["update"]
            self.assertEqual(update["status"], "InProgress")
            c = self.cluster("slow")
            self.assertEqual((c["status"], c["version"]), ("ACTIVE", "1.33"))
        finally:
            self.configure({"update_seconds": UPDATE_SECONDS})
        self.assertEqual(self.configure({})["update_seconds"], UPDATE_SECONDS)
        with self.assertRaises(urllib.error.HTTPError):
            self.configure({"update_seconds": -1})
        # Each cluster keeps its own OIDC issuer.
        self.assertNotEqual(self.cluster("plain")["identity"]["oidc"]["issuer"],
                            self.cluster("slow")["identity"]["oidc"]["issuer"])

    def test_node_groups_take_tags(self) -> None:
        eks = self.eks
        eks.create_cluster(name="tagged", roleArn=ROLE, resourcesVpcConfig=VPC)
        self.wait_until("cluster ACTIVE", lambda: self.cluster("tagged")["status"] == "ACTIVE")
        ng = eks.create_nodegroup(clusterName="tagged", nodegroupName="ng", nodeRole=ROLE,
                                  subnets=VPC["subnetIds"], tags={"a": "1"})["nodegroup"]
        eks.tag_resource(resourceArn=ng["nodegroupArn"], tags={"b": "2"})
        eks.untag_resource(resourceArn=ng["nodegroupArn"], tagKeys=["a"])
        self.assertEqual(self.nodegroup("tagged", "ng")["tags"], {"b": "2"})

    def test_no_value_in_a_list_drops_the_item(self) -> None:
        """A conditional policy statement whose condition is false is left out, as AWS does."""
        cfn = boto3.client("cloudformation", endpoint_url=self.endpoint, region_name="us-east-1",
                           aws_access_key_id="testing", aws_secret_access_key="testing")
        iam = boto3.client("iam", endpoint_url=self.endpoint, region_name="us-east-1",
                           aws_access_key_id="testing", aws_secret_access_key="testing")
        template = {
            "Conditions": {"Never": {"Fn::Equals": ["a", "b"]}},
            "Resources": {"P": {"Type": "AWS::IAM::ManagedPolicy", "Properties": {
                "ManagedPolicyName": "novalue",
                "PolicyDocument": {"Version": "2012-10-17", "Statement": [
                    {"Effect": "Allow", "Action": "ec2:DescribeVpcs", "Resource": "*"},
                    {"Fn::If": ["Never", {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
                                {"Ref": "AWS::NoValue"}]},
                ]},
            }}},
        }
        cfn.create_stack(StackName="novalue", TemplateBody=json.dumps(template))
        arn = "arn:aws:iam::123456789012:policy/novalue"
        version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
        doc = iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"]
        self.assertEqual([s["Action"] for s in doc["Statement"]], ["ec2:DescribeVpcs"])


if __name__ == "__main__":
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    unittest.main()
