"""Who am I, and who may call: STS over every protocol botocore uses, and SigV4 rejections."""

from __future__ import annotations

import datetime
import time
import urllib.parse

import botocore.exceptions
import pytest
import requests

from tests.support.aws import aws_cli, cli_json, client, signed_request

ROOT_ARN = "arn:aws:iam::000000000000:root"


def test_boto3_get_caller_identity_with_default_credentials(endpoint: str) -> None:
    identity = client(endpoint, "sts").get_caller_identity()
    assert identity["Account"] == "000000000000"
    assert identity["Arn"] == ROOT_ARN
    assert identity["UserId"] == "000000000000"
    assert identity["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert identity["ResponseMetadata"]["RequestId"]


def test_aws_cli_get_caller_identity(endpoint: str) -> None:
    identity = cli_json(aws_cli(endpoint, "sts", "get-caller-identity"))
    assert identity == {"UserId": "000000000000", "Account": "000000000000", "Arn": ROOT_ARN}


def test_wrong_secret_is_refused_with_signature_does_not_match(endpoint: str) -> None:
    sts = client(endpoint, "sts", secret_key="not-the-secret")
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        sts.get_caller_identity()
    error = caught.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert error["Error"]["Code"] == "SignatureDoesNotMatch"
    assert "signature we calculated does not match" in error["Error"]["Message"]


def test_unknown_access_key_is_refused_with_invalid_client_token_id(endpoint: str) -> None:
    sts = client(endpoint, "sts", access_key="AKIANOSUCHKEY0000000")
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        sts.get_caller_identity()
    error = caught.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert error["Error"]["Code"] == "InvalidClientTokenId"


def test_aws_cli_reports_wrong_secret(endpoint: str) -> None:
    result = aws_cli(endpoint, "sts", "get-caller-identity", secret_key="wrong")
    assert result.returncode != 0
    assert "SignatureDoesNotMatch" in result.stderr


def test_unsigned_request_is_refused(endpoint: str) -> None:
    response = requests.post(
        endpoint + "/",
        data="Action=GetCallerIdentity&Version=2011-06-15",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=10,
    )
    assert response.status_code == 403
    assert "<Code>MissingAuthenticationToken</Code>" in response.text


def test_get_caller_identity_over_the_json_protocol(endpoint: str) -> None:
    response = signed_request(
        endpoint,
        "sts",
        body=b"{}",
        headers={
            "Content-Type": "application/x-amz-json-1.0",
            "X-Amz-Target": "AWSSecurityTokenServiceV20110615.GetCallerIdentity",
        },
    )
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/x-amz-json-1.0"
    assert response.json() == {"UserId": "000000000000", "Account": "000000000000", "Arn": ROOT_ARN}


def test_json_protocol_error_is_json(endpoint: str) -> None:
    response = signed_request(
        endpoint,
        "sts",
        body=b"{}",
        secret_key="wrong",
        headers={
            "Content-Type": "application/x-amz-json-1.0",
            "X-Amz-Target": "AWSSecurityTokenServiceV20110615.GetCallerIdentity",
        },
    )
    assert response.status_code == 403
    assert response.json()["__type"] == "InvalidSignatureException"


def _presigned_identity_url(endpoint: str, expires: int = 60, secret_key: str = "test") -> str:
    """A GET URL, the way EKS-style tokens presign GetCallerIdentity."""
    sts = client(endpoint, "sts", secret_key=secret_key)
    return sts.generate_presigned_url("get_caller_identity", ExpiresIn=expires, HttpMethod="GET")


def test_presigned_url_is_accepted(endpoint: str) -> None:
    response = requests.get(_presigned_identity_url(endpoint), timeout=10)
    assert response.status_code == 200, response.text
    assert "<Account>000000000000</Account>" in response.text


def test_presigned_url_for_the_models_method_is_accepted(endpoint: str) -> None:
    url = client(endpoint, "sts").generate_presigned_url("get_caller_identity")
    assert requests.post(url, timeout=10).status_code == 200
    # signed for POST, so it is no good for GET
    assert requests.get(url, timeout=10).status_code == 403


def test_presigned_url_with_wrong_secret_is_refused(endpoint: str) -> None:
    response = requests.get(_presigned_identity_url(endpoint, secret_key="nope"), timeout=10)
    assert response.status_code == 403
    assert "<Code>SignatureDoesNotMatch</Code>" in response.text


def test_tampered_presigned_url_is_refused(endpoint: str) -> None:
    url = _presigned_identity_url(endpoint)
    tampered = url.replace("Action=GetCallerIdentity", "Action=GetCallerIdentity&Extra=1")
    assert tampered != url
    response = requests.get(tampered, timeout=10)
    assert response.status_code == 403
    assert "SignatureDoesNotMatch" in response.text


def test_expired_presigned_url_is_refused(endpoint: str) -> None:
    url = _presigned_identity_url(endpoint, expires=1)
    time.sleep(2.1)
    response = requests.get(url, timeout=10)
    assert response.status_code == 403
    assert "expired" in response.text.lower()


def test_request_outside_the_clock_skew_window_is_refused(endpoint: str) -> None:
    an_hour_ago = datetime.datetime.now(datetime.UTC).replace(tzinfo=None) - datetime.timedelta(
        hours=1
    )
    response = signed_request(
        endpoint,
        "sts",
        body=b"Action=GetCallerIdentity&Version=2011-06-15",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        signed_at=an_hour_ago,
    )
    assert response.status_code == 403
    assert "<Code>SignatureDoesNotMatch</Code>" in response.text
    assert "Signature expired" in response.text


def test_malformed_authorization_header_is_a_4xx(endpoint: str) -> None:
    response = requests.post(
        endpoint + "/",
        data="Action=GetCallerIdentity&Version=2011-06-15",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Authorization": "AWS4-HMAC-SHA256 Credential=test/garbage",
            "X-Amz-Date": time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()),
        },
        timeout=10,
    )
    assert 400 <= response.status_code < 500
    assert "<Code>" in response.text


def test_query_protocol_over_get(endpoint: str) -> None:
    query = urllib.parse.urlencode({"Action": "GetCallerIdentity", "Version": "2011-06-15"})
    response = signed_request(endpoint, "sts", "GET", "/?" + query)
    assert response.status_code == 200, response.text
    assert "<GetCallerIdentityResult>" in response.text


def test_credentials_scoped_to_another_service_are_refused(endpoint: str) -> None:
    """A signature for one service cannot be replayed against another (X-Amz-Target is not
    covered by the signature unless signed, so the scope must match the service served)."""
    response = signed_request(
        endpoint,
        "lambda",
        body=b"{}",
        headers={
            "Content-Type": "application/x-amz-json-1.0",
            "X-Amz-Target": "AWSSecurityTokenServiceV20110615.GetCallerIdentity",
        },
    )
    assert response.status_code == 403
    assert response.json()["__type"] == "InvalidSignatureException"
    assert "scoped to correct service: 'sts'" in response.json()["message"]


def test_a_signature_that_does_not_cover_host_is_refused(endpoint: str) -> None:
    import hashlib
    import hmac

    from squall.edge.sigv4 import signing_key

    body = b"Action=GetCallerIdentity&Version=2011-06-15"
    now = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    day = now[:8]
    canonical = "\n".join(
        [
            "POST",
            "/",
            "",
            f"x-amz-date:{now}\n",
            "x-amz-date",
            hashlib.sha256(body).hexdigest(),
        ]
    )
    scope = f"{day}/us-east-1/sts/aws4_request"
    to_sign = f"AWS4-HMAC-SHA256\n{now}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    signature = hmac.new(
        signing_key("test", day, "us-east-1", "sts"), to_sign.encode(), hashlib.sha256
    ).hexdigest()
    response = requests.post(
        endpoint + "/",
        data=body,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Amz-Date": now,
            "Authorization": f"AWS4-HMAC-SHA256 Credential=test/{scope}, "
            f"SignedHeaders=x-amz-date, Signature={signature}",
        },
        timeout=10,
    )
    assert response.status_code == 403
    assert "<Code>IncompleteSignature</Code>" in response.text
    assert "'Host' must be a 'SignedHeader'" in response.text
