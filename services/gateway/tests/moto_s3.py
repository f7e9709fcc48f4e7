"""moto's S3 server on a free loopback port, with a bucket, for the storage tests (the gateway's
API tests and the console's browser tests).

With `check_keys=True` the server checks request signatures as S3 does: an IAM user with an
access key allowed s3:* is made first (moto serves its first calls unauthenticated), then
authentication is switched on (moto's own INITIAL_NO_AUTH_ACTION_COUNT, a process-wide setting
restored by `stop()`), so a wrong secret is refused with SignatureDoesNotMatch."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

import boto3

from loom_common.devstack import infra

BUCKET = "loom-files"
REGION = "us-east-1"


@dataclass
class MotoS3:
    url: str
    client: object            # boto3 S3 client with the key below
    access_key_id: str
    secret_access_key: str
    _server: object
    _auth_before: float | None = None

    def stop(self) -> None:
        if self._auth_before is not None:
            from moto import settings

            settings.INITIAL_NO_AUTH_ACTION_COUNT = self._auth_before
        self._server.stop()


def start(check_keys: bool = False) -> MotoS3:
    from moto.server import ThreadedMotoServer

    port = infra.free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    url = f"http://127.0.0.1:{port}"
    key_id, secret = "ak", "sk"
    if check_keys:
        iam = boto3.client("iam", endpoint_url=url, region_name=REGION, aws_access_key_id="setup",
                           aws_secret_access_key="setup")
        user = f"loom-{uuid.uuid4().hex[:8]}"  # moto's state is process-wide: another server may have made "loom"
        iam.create_user(UserName=user)
        iam.put_user_policy(UserName=user, PolicyName="s3", PolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
        made = iam.create_access_key(UserName=user)["AccessKey"]
        key_id, secret = made["AccessKeyId"], made["SecretAccessKey"]
    client = boto3.client("s3", endpoint_url=url, region_name=REGION, aws_access_key_id=key_id,
                          aws_secret_access_key=secret)
    client.create_bucket(Bucket=BUCKET)
    before = None
    if check_keys:
        from moto import settings

        before, settings.INITIAL_NO_AUTH_ACTION_COUNT = settings.INITIAL_NO_AUTH_ACTION_COUNT, 0
    return MotoS3(url, client, key_id, secret, server, before)
