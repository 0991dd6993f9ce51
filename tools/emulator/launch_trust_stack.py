"""Launches the customer trust template in an emulated tenant account, as the customer
would: CreateStack of cfn-templates/customer-iam-role.yaml with the tenant's parameters.
For the demo and the tests; against real AWS the customer uses the console's quick-create
link or their own tooling.

Prints the stack's outputs as JSON.
"""

import argparse
import json
import pathlib
import sys

import boto3

ROOT = pathlib.Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "cfn-templates" / "customer-iam-role.yaml"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--endpoint", required=True, help="the emulator's URL")
    p.add_argument("--account", required=True, help="the tenant's 12-digit account id")
    p.add_argument("--external-id", required=True)
    p.add_argument("--platform-account", default="123456789012",
                   help="the account byoc runs as (moto's default account)")
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--stack-name", default="byoc-trust")
    p.add_argument("--role-name", default="byoc-deployer")
    p.add_argument("--tenant-slug", default="acme", help="the tenant's slug (TenantSlug)")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="another template parameter, e.g. EnableKarpenter=false")
    p.add_argument("--template-version",
                   help="pretend to be an older (or newer) template: overrides its version")
    args = p.parse_args()

    template = TEMPLATE.read_text()
    if args.template_version:
        current = 'Version:\n      Value: "'
        start = template.index(current) + len(current)
        end = template.index('"', start)
        template = template[:start] + args.template_version + template[end:]

    # moto's default credentials act in its default account; AssumeRole into any role of
    # the tenant's account yields credentials that act there (moto checks no trust policy).
    sts = boto3.client("sts", endpoint_url=args.endpoint, region_name=args.region,
                       aws_access_key_id="AKIADEFAULTACCOUNT01",
                       aws_secret_access_key="secret")
    creds = sts.assume_role(
        RoleArn=f"arn:aws:iam::{args.account}:role/customer-admin",
        RoleSessionName="customer",
    )["Credentials"]
    cfn = boto3.client("cloudformation", endpoint_url=args.endpoint,
                       region_name=args.region,
                       aws_access_key_id=creds["AccessKeyId"],
                       aws_secret_access_key=creds["SecretAccessKey"],
                       aws_session_token=creds["SessionToken"])
    cfn.create_stack(
        StackName=args.stack_name,
        TemplateBody=template,
        Capabilities=["CAPABILITY_NAMED_IAM"],
        Parameters=[
            {"ParameterKey": "TrustedAccountId", "ParameterValue": args.platform_account},
            {"ParameterKey": "ExternalId", "ParameterValue": args.external_id},
            {"ParameterKey": "RoleName", "ParameterValue": args.role_name},
            {"ParameterKey": "TenantSlug", "ParameterValue": args.tenant_slug},
        ] + [
            {"ParameterKey": k, "ParameterValue": v}
            for k, _, v in (pair.partition("=") for pair in args.param)
        ],
    )
    cfn.get_waiter("stack_create_complete").wait(
        StackName=args.stack_name, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
    stack = cfn.describe_stacks(StackName=args.stack_name)["Stacks"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    json.dump({"stack": args.stack_name, "status": stack["StackStatus"],
               "outputs": outputs}, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
