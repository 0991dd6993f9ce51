"""Renders the IAM policy documents of a CloudFormation template as CloudFormation would
create them: parameters substituted (the template's defaults, overridden by --param), the
template's conditions applied, intrinsic functions (Ref, Fn::Sub, Fn::GetAtt, Fn::If,
Fn::Join, Fn::Split, Fn::FindInMap, Fn::Select) evaluated and AWS::NoValue dropped.

Prints JSON: {"policies": {LogicalId: {"name", "attached", "document"}}, "trust": {...}},
where `attached` says whether the policy is attached to a role of the template (a
permissions boundary is not), and `trust` is the role's assume-role policy.

Used by the policy checks of the test suite (tools/policy/check.py, components/tests/
trust_policy.rs); the template is parsed with cfn-lint's own decoder (pinned in
tools/emulator/requirements.txt).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
from typing import Any

from cfnlint.decode import decode_str

ROOT = pathlib.Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "cfn-templates" / "customer-iam-role.yaml"

NO_VALUE = object()


class Renderer:
    def __init__(self, template: dict[str, Any], params: dict[str, str], account: str,
                 region: str, stack_name: str) -> None:
        self.t = template
        self.params: dict[str, Any] = {}
        for name, spec in template.get("Parameters", {}).items():
            if name in params:
                value: Any = params[name]
            elif "Default" in spec:
                value = spec["Default"]
            else:
                raise SystemExit(f"render: parameter {name} has no default: pass --param {name}=...")
            if spec.get("Type") == "CommaDelimitedList":
                value = [v.strip() for v in value.split(",")] if isinstance(value, str) else value
                value = [v for v in value if v] or [""]
            self.params[name] = value
        unknown = set(params) - set(self.params)
        if unknown:
            raise SystemExit(f"render: unknown parameter(s) {sorted(unknown)}")
        self.pseudo = {
            "AWS::AccountId": account,
            "AWS::Partition": "aws",
            "AWS::Region": region,
            "AWS::StackName": stack_name,
            "AWS::StackId": f"arn:aws:cloudformation:{region}:{account}:stack/{stack_name}/00000000-0000-0000-0000-000000000000",
            "AWS::URLSuffix": "amazonaws.com",
        }
        self.conditions: dict[str, bool] = {}

    def condition(self, name: str) -> bool:
        if name not in self.conditions:
            self.conditions[name] = bool(self.eval(self.t["Conditions"][name]))
        return self.conditions[name]

    def ref(self, name: str) -> Any:
        if name in self.pseudo:
            return self.pseudo[name]
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.params:
            return self.params[name]
        resource = self.t["Resources"][name]
        props = resource.get("Properties", {})
        kind = resource["Type"]
        if kind == "AWS::IAM::Role":
            return self.eval(props["RoleName"])
        if kind == "AWS::IAM::ManagedPolicy":
            return f"arn:aws:iam::{self.pseudo['AWS::AccountId']}:policy/{self.eval(props['ManagedPolicyName'])}"
        raise SystemExit(f"render: no Ref for {kind} {name}")

    def get_att(self, name: str, attribute: str) -> Any:
        resource = self.t["Resources"][name]
        if resource["Type"] == "AWS::IAM::Role" and attribute == "Arn":
            return f"arn:aws:iam::{self.pseudo['AWS::AccountId']}:role/{self.ref(name)}"
        raise SystemExit(f"render: no GetAtt {name}.{attribute}")

    def sub(self, text: str, extra: dict[str, Any]) -> str:
        out, i = [], 0
        while i < len(text):
            start = text.find("${", i)
            if start < 0:
                out.append(text[i:])
                break
            out.append(text[i:start])
            end = text.index("}", start)
            var = text[start + 2:end]
            if var.startswith("!"):
                out.append("${" + var[1:] + "}")
            elif var in extra:
                out.append(str(extra[var]))
            elif "." in var and var.split(".")[0] in self.t.get("Resources", {}):
                out.append(str(self.get_att(*var.split(".", 1))))
            else:
                value = self.ref(var)
                out.append(",".join(value) if isinstance(value, list) else str(value))
            i = end + 1
        return "".join(out)

    def eval(self, node: Any) -> Any:
        if isinstance(node, list):
            items = [self.eval(v) for v in node]
            return [v for v in items if v is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, arg), = node.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::Sub":
                if isinstance(arg, list):
                    text, mapping = arg
                    return self.sub(text, {k: self.eval(v) for k, v in mapping.items()})
                return self.sub(arg, {})
            if key == "Fn::GetAtt":
                name, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.get_att(name, attribute)
            if key == "Fn::If":
                cond, yes, no = arg
                return self.eval(yes if self.condition(cond) else no)
            if key == "Fn::Join":
                delimiter, values = arg
                return self.eval(delimiter).join(str(v) for v in self.eval(values))
            if key == "Fn::Split":
                delimiter, value = arg
                return self.eval(value).split(self.eval(delimiter))
            if key == "Fn::Select":
                index, values = arg
                return self.eval(values)[int(self.eval(index))]
            if key == "Fn::FindInMap":
                m, k1, k2 = (self.eval(a) for a in arg)
                return self.t["Mappings"][m][k1][k2]
            if key == "Fn::Equals":
                a, b = (self.eval(v) for v in arg)
                return a == b
            if key == "Fn::Not":
                return not self.eval(arg[0])
            if key == "Fn::And":
                return all(self.eval(v) for v in arg)
            if key == "Fn::Or":
                return any(self.eval(v) for v in arg)
            if key == "Condition":
                return self.condition(arg)
        out = {}
        for k, v in node.items():
            value = self.eval(v)
            if value is not NO_VALUE:
                out[k] = value
        return out

    def render(self) -> dict[str, Any]:
        policies: dict[str, Any] = {}
        trust: dict[str, Any] = {}
        for name, resource in self.t["Resources"].items():
            if "Condition" in resource and not self.condition(resource["Condition"]):
                continue
            props = resource.get("Properties", {})
            if resource["Type"] == "AWS::IAM::ManagedPolicy":
                policies[name] = {
                    "name": self.eval(props["ManagedPolicyName"]),
                    "attached": bool(props.get("Roles")),
                    "document": self.eval(props["PolicyDocument"]),
                }
            elif resource["Type"] == "AWS::IAM::Role":
                trust[name] = self.eval(props["AssumeRolePolicyDocument"])
                for policy in props.get("Policies", []):
                    p = self.eval(policy)
                    policies[f"{name}.{p['PolicyName']}"] = {
                        "name": p["PolicyName"], "attached": True, "document": p["PolicyDocument"],
                    }
        return {"policies": policies, "trust": trust}


def render(template_path: pathlib.Path = TEMPLATE, params: dict[str, str] | None = None,
           account: str = "111111111111", region: str = "us-east-1",
           stack_name: str = "byoc-trust") -> dict[str, Any]:
    template, matches = decode_str(template_path.read_text())
    if matches:
        raise SystemExit(f"render: {template_path}: {matches}")
    return Renderer(template, params or {}, account, region, stack_name).render()


def parse_params(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"render: --param {pair!r} is not KEY=VALUE")
        out[key] = value
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--template", type=pathlib.Path, default=TEMPLATE)
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--account", default="111111111111")
    p.add_argument("--region", default="us-east-1")
    args = p.parse_args()
    json.dump(render(args.template, parse_params(args.param), args.account, args.region),
              sys.stdout, indent=1, sort_keys=True)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
