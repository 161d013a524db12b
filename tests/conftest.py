"""Fixtures shared by every test suite: a real local AWS API (the moto server, patched as the
local cloud runs it) on a free loopback port, started once per session."""

from __future__ import annotations

import pytest

from localcloud.awsapi import AwsApiProcess


@pytest.fixture(scope="session")
def aws_api(tmp_path_factory):
    """The local AWS API for the whole session. Tests that need an empty account call ``reset()``."""
    state = tmp_path_factory.mktemp("awsapi")
    # moto's recorder (localcloud.recorder) writes only while a test records, into this session's own file.
    api = AwsApiProcess(state / "awsapi.log", extra_env={"MOTO_RECORDER_FILEPATH": str(state / "moto_recording")})
    yield api
    api.stop()


@pytest.fixture
def aws_env(aws_api, monkeypatch):
    """Point boto3 and the AWS modules at the local AWS API with dummy credentials."""
    for name, value in {
        "AWS_ENDPOINT_URL": aws_api.endpoint_url,
        "AWS_URL": aws_api.endpoint_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    return aws_api
