#!/usr/bin/env python3
"""Fixtures in moto (the open-source AWS emulator) for tests and the demo, made with boto3.

Usage (every command prints one JSON object on stdout):
  moto_fixture.py pool   --endpoint URL [--region R] [--role-arn ARN] [--users SPEC ...]
      Creates a user pool (in the account of ARN when given: moto acts in the account of an
      assumed role) with an app client that allows ADMIN_USER_PASSWORD_AUTH, and users.
      SPEC is NAME:KIND with KIND one of
        confirmed   CONFIRMED, verified email, password set  (a reset succeeds)
        unverified  CONFIRMED, email not verified            (InvalidParameterException)
        disabled    CONFIRMED, verified email, disabled      (NotAuthorizedException)
        new         FORCE_CHANGE_PASSWORD                    (NotAuthorizedException)
      Prints {"pool_id", "client_id", "password"}.
  moto_fixture.py status --endpoint URL [--region R] [--role-arn ARN] --pool ID --user NAME
      -> {"status": "RESET_REQUIRED"}
  moto_fixture.py token  --endpoint URL --pool ID --client ID --user NAME --password P -> {"access_token"}
  moto_fixture.py signed --endpoint URL [--region R]
      For a moto started with INITIAL_NO_AUTH_ACTION_COUNT=6: creates an IAM user allowed to do
      everything, its access key, a pool and one confirmed user, in exactly 6 requests.
      Prints {"access_key_id", "secret_access_key", "pool_id", "username"}.
"""
import argparse
import json
import sys

import boto3

PASSWORD = "Demo-Passw0rd!"


def client(service, args):
    """A boto3 client for moto's default account, or with --role-arn for the role's account
    (moto acts in the account of the role an AssumeRole named)."""
    keys = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    if getattr(args, "role_arn", None):
        sts = boto3.client("sts", endpoint_url=args.endpoint, region_name=args.region, **keys)
        found = sts.assume_role(RoleArn=args.role_arn, RoleSessionName="fixture")["Credentials"]
        keys = {"aws_access_key_id": found["AccessKeyId"], "aws_secret_access_key": found["SecretAccessKey"],
                "aws_session_token": found["SessionToken"]}
    return boto3.client(service, endpoint_url=args.endpoint, region_name=args.region, **keys)


def create_user(idp, pool_id, name, kind):
    attributes = [{"Name": "email", "Value": f"{name}@example.com"}]
    if kind in ("confirmed", "disabled", "new"):
        attributes.append({"Name": "email_verified", "Value": "true"})
    idp.admin_create_user(UserPoolId=pool_id, Username=name, UserAttributes=attributes,
                          TemporaryPassword=PASSWORD, MessageAction="SUPPRESS")
    if kind != "new":
        idp.admin_set_user_password(UserPoolId=pool_id, Username=name, Password=PASSWORD, Permanent=True)
    if kind == "disabled":
        idp.admin_disable_user(UserPoolId=pool_id, Username=name)


def pool(args):
    idp = client("cognito-idp", args)
    pool_id = idp.create_user_pool(
        PoolName="cognito-reset-test",
        AccountRecoverySetting={"RecoveryMechanisms": [{"Priority": 1, "Name": "verified_email"}]},
    )["UserPool"]["Id"]
    client_id = idp.create_user_pool_client(
        UserPoolId=pool_id, ClientName="tests",
        ExplicitAuthFlows=["ALLOW_ADMIN_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
    )["UserPoolClient"]["ClientId"]
    for spec in args.users or []:
        name, _, kind = spec.partition(":")
        create_user(idp, pool_id, name, kind or "confirmed")
    return {"pool_id": pool_id, "client_id": client_id, "password": PASSWORD}


def status(args):
    idp = client("cognito-idp", args)
    return {"status": idp.admin_get_user(UserPoolId=args.pool, Username=args.user)["UserStatus"]}


def token(args):
    idp = client("cognito-idp", args)
    result = idp.admin_initiate_auth(
        UserPoolId=args.pool, ClientId=args.client, AuthFlow="ADMIN_USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": args.user, "PASSWORD": args.password})
    return {"access_token": result["AuthenticationResult"]["AccessToken"]}


def signed(args):
    iam = client("iam", args)
    iam.create_user(UserName="cognito-reset")                                        # 1
    key = iam.create_access_key(UserName="cognito-reset")["AccessKey"]               # 2
    iam.put_user_policy(UserName="cognito-reset", PolicyName="all", PolicyDocument=json.dumps({  # 3
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
    idp = client("cognito-idp", args)
    pool_id = idp.create_user_pool(PoolName="signed")["UserPool"]["Id"]               # 4
    idp.admin_create_user(UserPoolId=pool_id, Username="signed-user",                # 5
                          UserAttributes=[{"Name": "email", "Value": "s@example.com"},
                                          {"Name": "email_verified", "Value": "true"}],
                          MessageAction="SUPPRESS", TemporaryPassword=PASSWORD)
    idp.admin_set_user_password(UserPoolId=pool_id, Username="signed-user",          # 6
                                Password=PASSWORD, Permanent=True)
    return {"access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"],
            "pool_id": pool_id, "username": "signed-user"}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["pool", "status", "token", "signed"])
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--users", nargs="*")
    parser.add_argument("--pool")
    parser.add_argument("--client")
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument("--role-arn")
    args = parser.parse_args()
    result = {"pool": pool, "status": status, "token": token, "signed": signed}[args.command](args)
    json.dump(result, sys.stdout)
    print()


if __name__ == "__main__":
    main()
