"""Creates deploy/cloudformation.yaml in an emulator (moto's CloudFormation) and checks
what it made: the two streams, the bucket's versioning and lifecycle, the two roles'
policies (the instance role: parameters, Session Manager, assuming ServicesRole;
ServicesRole: only what the services call, no s3:DeleteObjectVersion, delete only under
backups/), the security group (no inbound without SshCidr; port 22 only from it with
SshCidr); and that deploy/compose.ec2.yml hands AWS credentials only to the services that
call AWS, with no container reaching the metadata service.

  python deploy/tests/check_cloudformation.py ENDPOINT

Run by testing/deploy/tests/cloudformation.rs against a private moto server.
"""
import ast
import json
import os
import subprocess
import sys
import tempfile
import time

import boto3
import yaml

endpoint = sys.argv[1]
os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
region = "us-east-1"
kw = dict(endpoint_url=endpoint, region_name=region)
cfn, ec2, s3, iam, kinesis, ssm = (boto3.client(n, **kw) for n in ("cloudformation", "ec2", "s3", "iam", "kinesis", "ssm"))
template = open(os.path.join(os.path.dirname(__file__), "..", "cloudformation.yaml")).read()

vpc = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.42.1.0/24")["Subnet"]["SubnetId"]
ami = ec2.describe_images()["Images"][0]["ImageId"]
ssm.put_parameter(Name="/cashtag-test/ami", Value=ami, Type="String", Overwrite=True)


def create(name, extra):
    params = {
        "VpcId": vpc,
        "SubnetId": subnet,
        "ReleaseUrl": "https://example.com/cashtag.tar.gz",
        "ReleaseSha256": "0" * 64,
        "ImageId": "/cashtag-test/ami",
        **extra,
    }
    cfn.create_stack(
        StackName=name,
        TemplateBody=template,
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()],
        Capabilities=["CAPABILITY_IAM"],
    )
    for _ in range(200):
        s = cfn.describe_stacks(StackName=name)["Stacks"][0]
        if not s["StackStatus"].endswith("IN_PROGRESS"):
            break
        time.sleep(0.1)
    assert s["StackStatus"] == "CREATE_COMPLETE", (s["StackStatus"], s.get("StackStatusReason"))
    return {o["OutputKey"]: o["OutputValue"] for o in s.get("Outputs", [])}, {
        r["LogicalResourceId"]: r["PhysicalResourceId"] for r in cfn.list_stack_resources(StackName=name)["StackResourceSummaries"]
    }


def check(cond, what):
    if not cond:
        sys.exit(f"check_cloudformation: FAILED: {what}")
    print(f"ok: {what}")


out, res = create("cashtag-a", {})
streams = kinesis.list_streams()["StreamNames"]
check({"cashtag-a-posts", "cashtag-a-market"} <= set(streams), f"both streams exist ({streams})")
bucket = out["Bucket"]
check(bucket in [b["Name"] for b in s3.list_buckets()["Buckets"]], "the bucket exists")
enc = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
check(enc[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256", "the bucket is encrypted")
# moto's CloudFormation does not apply a bucket's VersioningConfiguration and
# LifecycleConfiguration (it models only encryption and tags), so these two are checked in
# the template as CloudFormation reads it.
from cfnlint.decode import cfn_yaml  # noqa: E402

props = cfn_yaml.load(os.path.join(os.path.dirname(__file__), "..", "cloudformation.yaml"))["Resources"]["Bucket"]["Properties"]
check(props["VersioningConfiguration"] == {"Status": "Enabled"}, "bucket versioning is on (template)")
rules = props["LifecycleConfiguration"]["Rules"]
check(any(r.get("AbortIncompleteMultipartUpload", {}).get("DaysAfterInitiation") == 1 and r["Status"] == "Enabled" for r in rules),
      "incomplete uploads are aborted after a day (template)")
check(any(r.get("Prefix") == "backups/" and r.get("ExpirationInDays") == {"Ref": "BackupRetentionDays"}
          and r.get("NoncurrentVersionExpirationInDays") == {"Ref": "BackupRetentionDays"} for r in rules),
      "backups and their old versions expire after BackupRetentionDays (template)")

def role_statements(role):
    out = []
    for n in iam.list_role_policies(RoleName=role)["PolicyNames"]:
        doc = iam.get_role_policy(RoleName=role, PolicyName=n)["PolicyDocument"]
        if isinstance(doc, str):
            # moto hands back the document CloudFormation gave it as a Python literal.
            doc = json.loads(doc) if doc.startswith('{"') else ast.literal_eval(doc)
        out += doc["Statement"]
    return out


def actions_of(statements):
    return {a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}


host_statements = role_statements(res["Role"])
host_actions = actions_of(host_statements)
check(host_actions == {
    "ssm:GetParametersByPath", "ssm:GetParameters", "sts:AssumeRole",
    "ssm:UpdateInstanceInformation", "ssmmessages:CreateControlChannel", "ssmmessages:CreateDataChannel",
    "ssmmessages:OpenControlChannel", "ssmmessages:OpenDataChannel", "ec2messages:AcknowledgeMessage",
    "ec2messages:DeleteMessage", "ec2messages:FailMessage", "ec2messages:GetEndpoint", "ec2messages:GetMessages",
    "ec2messages:SendReply",
}, f"the instance role: parameters, Session Manager, assuming ServicesRole ({sorted(host_actions)})")
services_role = iam.get_role(RoleName=res["ServicesRole"])["Role"]
assumes = [s for s in host_statements if s["Action"] == "sts:AssumeRole"]
check(assumes and all(s["Resource"] == services_role["Arn"] for s in assumes), "the host assumes ServicesRole only")
statements = role_statements(res["ServicesRole"])
actions = actions_of(statements)
check(actions == {
    "kinesis:PutRecords", "kinesis:DescribeStreamSummary", "s3:ListBucket", "s3:ListBucketMultipartUploads",
    "s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts", "s3:DeleteObject",
}, f"ServicesRole allows only what the services call, no parameter ({sorted(actions)})")
check(all("*" not in a for a in actions | host_actions), "no wildcard action")
statements += host_statements
reads = [s for s in statements if any(a.startswith("ssm:GetParameter") for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"]))]
check(reads and all("parameter" in str(r) and r != "*" for s in reads for r in ([s["Resource"]] if isinstance(s["Resource"], str) else s["Resource"])),
      "parameters are readable only under the stack's prefix (no managed policy grants them on *)")
deletes = [s for s in statements if "s3:DeleteObject" in s["Action"]]
check(all(str(r).endswith("/backups/*") for s in deletes for r in (s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]])),
      "objects can be deleted only under backups/ (versions never)")
kin = [s for s in statements if "kinesis:PutRecords" in s["Action"]]
check(all(r != "*" for s in kin for r in s["Resource"]), "PutRecords only on the two streams")

sg = ec2.describe_security_groups(GroupIds=[res["SecurityGroup"]])["SecurityGroups"][0]
check(sg["IpPermissions"] == [], "no inbound rule without SshCidr")

out_b, res_b = create("cashtag-b", {"SshCidr": "203.0.113.0/24"})
sg = ec2.describe_security_groups(GroupIds=[res_b["SecurityGroup"]])["SecurityGroups"][0]
perms = sg["IpPermissions"]
check(len(perms) == 1 and perms[0]["FromPort"] == 22 and perms[0]["IpRanges"][0]["CidrIp"] == "203.0.113.0/24",
      "with SshCidr: port 22 from that CIDR only")
inst = ec2.describe_instances(InstanceIds=[res["Instance"]])["Reservations"][0]["Instances"][0]
check("InstanceProfile" in inst.get("IamInstanceProfile", {}).get("Arn", ""), "the instance runs with the instance profile")
# Not modelled by moto's CloudFormation either (it keeps EC2's defaults): checked in the template.
template_res = cfn_yaml.load(os.path.join(os.path.dirname(__file__), "..", "cloudformation.yaml"))["Resources"]
check(template_res["Instance"]["Properties"]["MetadataOptions"]["HttpTokens"] == "required", "IMDSv2 required (template)")
check(template_res["Instance"]["Properties"]["MetadataOptions"]["HttpPutResponseHopLimit"] == 1,
      "the metadata service answers the host only, no container (hop limit 1, template)")
check("ManagedPolicyArns" not in template_res["Role"]["Properties"], "no managed policy (template)")
user_data = str(template_res["Instance"]["Properties"]["UserData"])
check("sha256sum -c" in user_data and user_data.count("sha256sum -c") == 2, "both downloads are checked (template)")
check("cashtag-aws-credentials" in user_data and "compose.ec2.yml" in user_data and "secrets-init" in user_data,
      "the host renews ServicesRole's credentials, adds compose.ec2.yml, makes the password files (template)")

# deploy/compose.ec2.yml, merged the way the host's compose merges it.
root = os.path.join(os.path.dirname(__file__), "..", "..")
secrets = tempfile.mkdtemp()
for name in ("redis_password", "mongo_root_password", "mongo_app_password", "mongo_analyst_password"):
    open(os.path.join(secrets, name), "w").write("x\n")
open(os.path.join(secrets, "cashtag.env"), "w").close()
program = ["docker", "compose"] if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0 \
    else ["docker-compose"]
merged = subprocess.run(
    program + ["-f", "docker-compose.yml", "-f", "deploy/compose.ec2.yml", "config"], cwd=root, capture_output=True, text=True,
    env={**os.environ, "CASHTAG_SECRETS_DIR": secrets, "CASHTAG_ENV_FILE": os.path.join(secrets, "cashtag.env")},
)
check(merged.returncode == 0, f"docker-compose.yml + deploy/compose.ec2.yml is valid ({merged.stderr.strip()[-300:]})")
services = yaml.safe_load(merged.stdout)["services"]
with_aws = {n for n, svc in services.items() if (svc.get("environment") or {}).get("AWS_CONFIG_FILE")}
check(with_aws == {"stocks", "twitter", "backup", "analysis", "predict"}, f"AWS credentials only where AWS is called ({sorted(with_aws)})")
check(all((services[n]["environment"] or {}).get("AWS_EC2_METADATA_DISABLED") == "true"
          and any(str(v).startswith("/opt/cashtag/aws:/run/aws") or (isinstance(v, dict) and v.get("source") == "/opt/cashtag/aws")
                  for v in services[n]["volumes"]) for n in with_aws),
      "those read the host's renewed credentials, never the metadata service")
print("check_cloudformation: passed")
