"""Unit tests for the acm_certificate_request module.

The decision helpers run against ``FakeAws``, an in-memory stand-in installed in place of the module's
own API wrappers, so every write the module would make is recorded. The wrappers themselves and
``main()`` are tested against MagicMock boto3 clients.
"""

from __future__ import annotations

import copy
import json
from unittest.mock import MagicMock

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.amazon.aws.plugins.module_utils.exceptions import AnsibleAWSError
from ansible_collections.ecs_production.platform.plugins.modules import acm_certificate_request as mod
from botocore.exceptions import ClientError

ZONE = mod.Zone(id="Z123", name="example.com")
ACCOUNT_ARN = "arn:aws:acm:us-east-1:123456789012:certificate/"
ALB_ARN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/web/0123"
DEFAULTS = {
    "state": "present",
    "domain_name": "app.example.com",
    "subject_alternative_names": [],
    "hosted_zone_id": None,
    "hosted_zone_name": "example.com",
    "key_algorithm": "RSA_2048",
    "validation_record_ttl": 300,
    "wait": True,
    "wait_timeout": 600,
    "tags": {"Name": "web"},
    "purge_tags": True,
}


def record_for(name: str) -> dict:
    base = name[2:] if name.startswith("*.") else name
    return {"Name": f"_v.{base}.", "Type": "CNAME", "Value": f"_{base.split('.')[0]}.acm-validations.aws."}


def make_cert(arn: str, domain: str = "app.example.com", sans=(), status: str = "ISSUED", **extra) -> dict:
    names = [domain, *sans]
    cert = {
        "CertificateArn": arn,
        "DomainName": domain,
        "SubjectAlternativeNames": names,
        "Status": status,
        "Type": "AMAZON_ISSUED",
        "KeyAlgorithm": "RSA_2048",
        "InUseBy": [],
        "DomainValidationOptions": [{"DomainName": n, "ResourceRecord": record_for(n)} for n in names],
        "Tags": {"Name": "web"},
    }
    cert.update(extra)
    return cert


def rrset(name: str, ttl: int = 300) -> dict:
    record = record_for(name)
    return {"Name": record["Name"], "Type": "CNAME", "TTL": ttl, "ResourceRecords": [{"Value": record["Value"]}]}


def client_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": f"{code} happened"}}, "Operation")


class FakeModule:
    def __init__(self, check_mode: bool = False, **params):
        self.params = dict(DEFAULTS, **params)
        self.check_mode = check_mode
        self.warnings: list[str] = []

    def warn(self, msg: str) -> None:
        self.warnings.append(msg)


class Clock:
    """Stands in for the module's ``time``: sleeping advances the clock."""

    def __init__(self):
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class FakeAws:
    """ACM and one Route 53 zone in memory, replacing the module's API wrappers; writes are recorded."""

    WRAPPERS = (
        "list_certificates",
        "list_certificate_tags",
        "describe_certificate",
        "describe_requested_certificate",
        "request_certificate",
        "delete_certificate",
        "add_certificate_tags",
        "remove_certificate_tags",
        "get_cname_record",
        "change_record_sets",
    )

    def __init__(self):
        self.certs: dict[str, dict] = {}
        self.records: dict[str, dict] = {}
        self.writes: list[tuple] = []
        self.statuses: dict[str, list] = {}  # statuses successive describes move a certificate through
        self.in_use_for = 0  # how many delete attempts answer ResourceInUseException

    def add(self, cert: dict, with_records: bool = True) -> dict:
        self.certs[cert["CertificateArn"]] = cert
        if with_records:
            for option in cert["DomainValidationOptions"]:
                self.records[mod.fqdn(option["ResourceRecord"]["Name"])] = rrset(option["DomainName"])
        return cert

    def install(self, monkeypatch) -> FakeAws:
        for name in self.WRAPPERS:
            monkeypatch.setattr(mod, name, getattr(self, name.replace("describe_requested", "describe")))
        return self

    def list_certificates(self, _acm, statuses=None):
        return [
            {"CertificateArn": arn, "DomainName": c["DomainName"]}
            for arn, c in self.certs.items()
            if not statuses or c["Status"] in statuses
        ]

    def list_certificate_tags(self, _acm, arn):
        return dict(self.certs[arn]["Tags"]) if arn in self.certs else None

    def describe_certificate(self, _acm, arn):
        if arn not in self.certs:
            return None
        if self.statuses.get(arn):
            self.certs[arn]["Status"] = self.statuses[arn].pop(0)
        cert = copy.deepcopy(self.certs[arn])
        del cert["Tags"]
        return cert

    def request_certificate(self, _acm, params):
        self.writes.append(("request", params))
        arn = f"{ACCOUNT_ARN}{len(self.certs) + 1}"
        sans = [n for n in params.get("SubjectAlternativeNames", []) if n != params["DomainName"]]
        tags = {t["Key"]: t["Value"] for t in params["Tags"]}
        self.add(make_cert(arn, params["DomainName"], sans, "PENDING_VALIDATION", Tags=tags), with_records=False)
        return arn

    def delete_certificate(self, _acm, arn):
        self.writes.append(("delete", arn))
        if self.in_use_for:
            self.in_use_for -= 1
            raise mod.CertificateInUseError(arn)
        return self.certs.pop(arn, None) is not None

    def add_certificate_tags(self, _acm, arn, tags):
        self.writes.append(("tag", arn, tags))
        self.certs[arn]["Tags"].update(tags)

    def remove_certificate_tags(self, _acm, arn, keys):
        self.writes.append(("untag", arn, keys))

    def get_cname_record(self, _route53, _zone_id, name):
        return copy.deepcopy(self.records.get(mod.fqdn(name)))

    def change_record_sets(self, _route53, _zone_id, changes):
        self.writes.append(("records", [(c["Action"], c["ResourceRecordSet"]["Name"]) for c in changes]))
        for change in changes:
            name = mod.fqdn(change["ResourceRecordSet"]["Name"])
            if change["Action"] == "DELETE":
                del self.records[name]
            else:
                self.records[name] = change["ResourceRecordSet"]


@pytest.fixture
def aws(monkeypatch) -> FakeAws:
    return FakeAws().install(monkeypatch)


@pytest.fixture
def clock(monkeypatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(mod, "time", fake)
    return fake


def want(**params) -> mod.Want:
    return mod.want_from_params(dict(DEFAULTS, **params))


def write_kinds(aws: FakeAws) -> list[str]:
    return [w[0] for w in aws.writes]


# ---- input validation ----


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ({"domain_name": None}, "domain_name must be a non-empty domain name"),
        ({"domain_name": "  "}, "domain_name must be a non-empty domain name"),
        ({"domain_name": "app..example.com"}, "is not a valid domain name"),
        ({"domain_name": "-app.example.com"}, "is not a valid domain name"),
        ({"domain_name": "app_1.example.com"}, "is not a valid domain name"),
        ({"domain_name": "localhost"}, "is not a valid domain name"),
        ({"domain_name": "a.*.example.com"}, "is not a valid domain name"),
        ({"domain_name": ("x" * 60) + ".example.com"}, "longer than 64 characters"),
        ({"subject_alternative_names": ["ok.example.com", "bad name.example.com"]}, "is not a valid domain name"),
        ({"tags": {"Owner": "me"}}, "non-empty 'Name' tag"),
        ({"tags": {"Name": ""}}, "non-empty 'Name' tag"),
        ({"hosted_zone_name": "*.example.com"}, "not a valid DNS zone name"),
        ({"hosted_zone_name": None, "hosted_zone_id": " "}, "hosted_zone_id must not be empty"),
        ({"validation_record_ttl": -1}, "validation_record_ttl must be 0 or more"),
        ({"wait_timeout": -5}, "wait_timeout must be 0 or more"),
        ({"state": "absent", "domain_name": ""}, "is not a valid domain name"),
    ],
)
def test_check_params_rejects(params, problem):
    problems = mod.check_params(dict(DEFAULTS, **params))
    assert any(problem in p for p in problems), problems


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"domain_name": "*.Example.COM."},
        {"subject_alternative_names": ["www.example.com", "*.example.com"]},
        {"state": "absent", "domain_name": None},
        {"hosted_zone_name": None, "hosted_zone_id": "/hostedzone/Z123"},
    ],
)
def test_check_params_accepts(params):
    assert mod.check_params(dict(DEFAULTS, **params)) == []


def test_want_normalises_names():
    result = want(domain_name="App.Example.com.", subject_alternative_names=["WWW.example.com", "app.example.com"])
    assert result.domain == "app.example.com"
    assert result.sans == ("www.example.com",)
    assert result.all_names == ["app.example.com", "www.example.com"]


def test_idempotency_token_is_stable_and_valid():
    token = mod.idempotency_token(want(subject_alternative_names=["b.example.com", "a.example.com"]))
    assert token == mod.idempotency_token(want(subject_alternative_names=["a.example.com", "b.example.com"]))
    assert len(token) == 32
    assert token.isalnum()
    assert token != mod.idempotency_token(want(key_algorithm="EC_prime256v1"))
    assert token != mod.idempotency_token(want(subject_alternative_names=["a.example.com", "b.example.com"]), "arn")


def test_request_params_ask_for_dns_validation_with_tags():
    params = mod.request_params(want(subject_alternative_names=["www.example.com"]), "tok")
    assert params == {
        "DomainName": "app.example.com",
        "ValidationMethod": "DNS",
        "KeyAlgorithm": "RSA_2048",
        "IdempotencyToken": "tok",
        "Tags": [{"Key": "Name", "Value": "web"}],
        "SubjectAlternativeNames": ["app.example.com", "www.example.com"],
    }
    assert "SubjectAlternativeNames" not in mod.request_params(want(), "tok")


# ---- pure decisions ----


def test_pick_certificate_prefers_issued_match():
    pending = make_cert(ACCOUNT_ARN + "1", status="PENDING_VALIDATION")
    issued = make_cert(ACCOUNT_ARN + "2")
    other_names = make_cert(ACCOUNT_ARN + "3", sans=["www.example.com"])
    ec_key = make_cert(ACCOUNT_ARN + "4", KeyAlgorithm="EC_prime256v1")
    imported = make_cert(ACCOUNT_ARN + "5", Type="IMPORTED")
    assert mod.pick_certificate([pending, issued, other_names, ec_key, imported], want()) is issued
    assert mod.pick_certificate([other_names, ec_key, imported], want()) is None
    assert mod.pick_certificate([ec_key], want(key_algorithm="EC_prime256v1")) is ec_key


def test_validation_records_share_one_record_for_a_name_and_its_wildcard():
    cert = make_cert(ACCOUNT_ARN + "1", "example.com", sans=["*.example.com"])
    assert mod.validation_records(cert) == [
        {"name": "_v.example.com.", "type": "CNAME", "value": "_example.acm-validations.aws."}
    ]
    assert mod.records_published(cert)
    cert["DomainValidationOptions"].append({"DomainName": "late.example.com"})
    assert not mod.records_published(cert)


def test_names_outside_zone():
    names = want(domain_name="example.com", subject_alternative_names=["*.example.com", "a.b.example.com", "x.org"])
    assert mod.names_outside_zone(names, ZONE) == ["x.org"]
    assert mod.names_outside_zone(want(domain_name="badexample.com"), ZONE) == ["badexample.com"]


# ---- hosted zone ----


def zone_entry(zone_id: str, private: bool = False) -> dict:
    return {"Id": f"/hostedzone/{zone_id}", "Name": "example.com.", "Config": {"PrivateZone": private}}


@pytest.mark.parametrize(
    ("zones", "expected"),
    [
        ([zone_entry("Z1")], mod.Zone("Z1", "example.com")),
        ([zone_entry("Z1", private=True), zone_entry("Z2")], mod.Zone("Z2", "example.com")),
        ([], None),
    ],
)
def test_resolve_zone_by_name(monkeypatch, zones, expected):
    monkeypatch.setattr(mod, "list_hosted_zones_named", lambda _route53, _name: zones)
    assert mod.resolve_zone(None, {"hosted_zone_name": "Example.com."}) == expected


@pytest.mark.parametrize(
    ("zones", "message"),
    [
        ([zone_entry("Z1", private=True)], "is private"),
        ([zone_entry("Z1"), zone_entry("Z2")], "Several public hosted zones"),
    ],
)
def test_resolve_zone_rejects(monkeypatch, zones, message):
    monkeypatch.setattr(mod, "list_hosted_zones_named", lambda _route53, _name: zones)
    with pytest.raises(AnsibleAWSError, match=message):
        mod.resolve_zone(None, {"hosted_zone_name": "example.com"})


def test_resolve_zone_by_id(monkeypatch):
    asked = []
    monkeypatch.setattr(mod, "get_hosted_zone", lambda _route53, zone_id: asked.append(zone_id) or zone_entry(zone_id))
    assert mod.resolve_zone(None, {"hosted_zone_id": "/hostedzone/Z9"}) == mod.Zone("Z9", "example.com")
    assert asked == ["Z9"]
    monkeypatch.setattr(mod, "get_hosted_zone", lambda _route53, zone_id: zone_entry(zone_id, private=True))
    with pytest.raises(AnsibleAWSError, match="is private"):
        mod.resolve_zone(None, {"hosted_zone_id": "Z9"})


# ---- state=present ----


@pytest.mark.parametrize("check_mode", [False, True])
def test_present_requests_writes_records_and_waits(aws, clock, check_mode):
    aws.statuses[ACCOUNT_ARN + "1"] = ["PENDING_VALIDATION", "PENDING_VALIDATION", "ISSUED"]
    module = FakeModule(check_mode, subject_alternative_names=["www.example.com"])
    result = mod.ensure_present(module, None, None, ZONE, want(subject_alternative_names=["www.example.com"]))

    assert result["changed"]
    assert result["diff"]["before"] == {}
    assert result["diff"]["after"]["subject_alternative_names"] == ["app.example.com", "www.example.com"]
    if check_mode:
        assert aws.writes == []
        assert result["certificate_arn"] is None
        assert clock.sleeps == []
    else:
        assert write_kinds(aws) == ["request", "records"]
        assert aws.writes[0][1]["IdempotencyToken"] == mod.idempotency_token(module_want(module))
        assert aws.writes[1][1] == [("UPSERT", "_v.app.example.com."), ("UPSERT", "_v.www.example.com.")]
        assert result["status"] == "ISSUED"
        assert result["tags"] == {"Name": "web"}
        assert len(result["validation_records"]) == 2


def module_want(module: FakeModule) -> mod.Want:
    return mod.want_from_params(module.params)


@pytest.mark.parametrize("check_mode", [False, True])
def test_present_rerun_changes_nothing(aws, clock, check_mode):
    cert = aws.add(make_cert(ACCOUNT_ARN + "1"))
    result = mod.ensure_present(FakeModule(check_mode), None, None, ZONE, want())
    assert not result["changed"]
    assert aws.writes == []
    assert result["certificate_arn"] == cert["CertificateArn"]
    assert result["diff"]["before"] == result["diff"]["after"]


@pytest.mark.parametrize("check_mode", [False, True])
@pytest.mark.parametrize("zone_record", [None, rrset("app.example.com", ttl=60)], ids=["missing", "other-ttl"])
def test_present_upserts_only_inexact_records(aws, clock, check_mode, zone_record):
    aws.add(make_cert(ACCOUNT_ARN + "1"), with_records=False)
    if zone_record:
        aws.records["_v.app.example.com."] = zone_record
    result = mod.ensure_present(FakeModule(check_mode), None, None, ZONE, want())
    assert result["changed"]
    assert result["diff"]["before"]["validation_records"] == []
    assert len(result["diff"]["after"]["validation_records"]) == 1
    assert aws.writes == ([] if check_mode else [("records", [("UPSERT", "_v.app.example.com.")])])


@pytest.mark.parametrize("check_mode", [False, True])
@pytest.mark.parametrize("purge", [True, False])
def test_present_syncs_tags(aws, clock, check_mode, purge):
    aws.add(make_cert(ACCOUNT_ARN + "1", Tags={"Name": "web", "Old": "x"}))
    desired = want(tags={"Name": "web", "Env": "prod"}, purge_tags=purge)
    result = mod.ensure_present(FakeModule(check_mode), None, None, ZONE, desired)
    expected_writes = [("tag", ACCOUNT_ARN + "1", {"Env": "prod"})]
    if purge:
        expected_writes.insert(0, ("untag", ACCOUNT_ARN + "1", ["Old"]))
    assert result["changed"]
    assert aws.writes == ([] if check_mode else expected_writes)
    assert result["tags"] == ({"Name": "web", "Env": "prod"} if purge else {"Name": "web", "Old": "x", "Env": "prod"})
    assert result["diff"]["before"]["tags"] == {"Name": "web", "Old": "x"}


@pytest.mark.parametrize("check_mode", [False, True])
def test_present_replaces_certificate_when_names_change(aws, clock, check_mode):
    old = aws.add(make_cert(ACCOUNT_ARN + "1", sans=["www.example.com"]))
    busy = aws.add(make_cert(ACCOUNT_ARN + "2", sans=["www.example.com", "old.example.com"], InUseBy=[ALB_ARN]))
    aws.statuses[ACCOUNT_ARN + "3"] = ["ISSUED"]
    module = FakeModule(check_mode)
    result = mod.ensure_present(module, None, None, ZONE, want())

    assert result["changed"]
    assert result["deleted_certificate_arns"] == [old["CertificateArn"]]
    assert result["superseded_certificate_arns"] == [busy["CertificateArn"]]
    assert "still in use" in module.warnings[0]
    # app's record is shared with the new certificate, www's with the busy one.
    assert result["removed_validation_records"] == []
    if check_mode:
        assert aws.writes == []
    else:
        assert write_kinds(aws) == ["request", "delete"]
        assert aws.writes[1] == ("delete", old["CertificateArn"])
        assert set(aws.certs) == {busy["CertificateArn"], ACCOUNT_ARN + "3"}


def test_present_removes_records_only_the_retired_certificate_used(aws, clock):
    aws.add(make_cert(ACCOUNT_ARN + "1", sans=["www.example.com"]))
    aws.statuses[ACCOUNT_ARN + "2"] = ["ISSUED"]
    result = mod.ensure_present(FakeModule(), None, None, ZONE, want())
    assert result["removed_validation_records"] == [
        {"name": "_v.www.example.com.", "type": "CNAME", "value": "_www.acm-validations.aws."}
    ]
    assert aws.writes[-1] == ("records", [("DELETE", "_v.www.example.com.")])
    assert "_v.app.example.com." in aws.records


@pytest.mark.parametrize("status", ["FAILED", "VALIDATION_TIMED_OUT"])
def test_present_fails_with_the_reason_when_validation_fails(aws, clock, status):
    aws.add(make_cert(ACCOUNT_ARN + "1", status="PENDING_VALIDATION", FailureReason="CAA_ERROR"))
    aws.statuses[ACCOUNT_ARN + "1"] = ["PENDING_VALIDATION", status]
    with pytest.raises(AnsibleAWSError, match=f"{status} \\(CAA_ERROR\\)") as error:
        mod.ensure_present(FakeModule(), None, None, ZONE, want())
    assert error.value.kwargs["failure_reason"] == "CAA_ERROR"


def test_present_times_out_while_pending(aws, clock):
    aws.add(make_cert(ACCOUNT_ARN + "1", status="PENDING_VALIDATION"))
    with pytest.raises(AnsibleAWSError, match="still PENDING_VALIDATION after 30 seconds"):
        mod.ensure_present(FakeModule(wait_timeout=30), None, None, ZONE, want())
    assert sum(clock.sleeps) == pytest.approx(30)
    assert aws.writes == []


def test_present_without_wait_returns_pending(aws, clock):
    aws.add(make_cert(ACCOUNT_ARN + "1", status="PENDING_VALIDATION"))
    result = mod.ensure_present(FakeModule(wait=False), None, None, ZONE, want())
    assert result["status"] == "PENDING_VALIDATION"
    assert not result["changed"]
    assert clock.sleeps == []


def test_present_waits_for_validation_records(aws, clock, monkeypatch):
    cert = aws.add(make_cert(ACCOUNT_ARN + "1", status="PENDING_VALIDATION"), with_records=False)
    published = cert["DomainValidationOptions"]
    cert["DomainValidationOptions"] = [{"DomainName": "app.example.com"}]
    original = aws.describe_certificate

    def describe_later(_acm, arn):
        if clock.sleeps:
            aws.certs[arn]["DomainValidationOptions"] = published
        return original(_acm, arn)

    monkeypatch.setattr(mod, "describe_certificate", describe_later)
    result = mod.ensure_present(FakeModule(wait=False), None, None, ZONE, want())
    assert clock.sleeps == [1.0]
    assert aws.writes == [("records", [("UPSERT", "_v.app.example.com.")])]
    assert result["changed"]


def test_request_asks_again_when_acm_returns_a_dead_certificate(aws, monkeypatch):
    dead = aws.add(make_cert(ACCOUNT_ARN + "1", status="FAILED"))
    answers = iter([dead["CertificateArn"]])
    real_request = aws.request_certificate
    monkeypatch.setattr(
        mod, "request_certificate", lambda acm, params: next(answers, None) or real_request(acm, params)
    )
    cert = mod.request_new_certificate(None, want())
    assert cert["CertificateArn"] == ACCOUNT_ARN + "2"
    assert aws.writes[0][1]["IdempotencyToken"] == mod.idempotency_token(want(), salt=dead["CertificateArn"])


# ---- state=absent ----


@pytest.mark.parametrize("check_mode", [False, True])
def test_absent_deletes_certificates_and_unshared_records(aws, clock, check_mode):
    doomed = aws.add(make_cert(ACCOUNT_ARN + "1", sans=["www.example.com"]))
    aws.add(make_cert(ACCOUNT_ARN + "2", Tags={"Name": "other"}))  # still needs app's record
    aws.records["_v.www.example.com."]["ResourceRecords"] = [{"Value": "someone-else."}]  # not exactly ours
    aws.records["_v.api.example.com."] = rrset("api.example.com")
    module = FakeModule(check_mode, state="absent", domain_name=None)
    result = mod.ensure_absent(module, None, None, ZONE, mod.want_from_params(module.params))

    assert result["changed"]
    assert result["deleted_certificate_arns"] == [doomed["CertificateArn"]]
    assert result["removed_validation_records"] == []
    assert [c["certificate_arn"] for c in result["diff"]["before"]["certificates"]] == [doomed["CertificateArn"]]
    assert result["diff"]["after"] == {"certificates": []}
    assert aws.writes == ([] if check_mode else [("delete", doomed["CertificateArn"])])


def test_absent_removes_exact_records(aws, clock):
    aws.add(make_cert(ACCOUNT_ARN + "1", status="FAILED"))
    result = mod.ensure_absent(FakeModule(state="absent"), None, None, ZONE, want())
    assert aws.writes == [("delete", ACCOUNT_ARN + "1"), ("records", [("DELETE", "_v.app.example.com.")])]
    assert result["removed_validation_records"][0]["name"] == "_v.app.example.com."
    assert aws.records == {}


@pytest.mark.parametrize("check_mode", [False, True])
def test_absent_when_nothing_matches_changes_nothing(aws, clock, check_mode):
    aws.add(make_cert(ACCOUNT_ARN + "1", Tags={"Name": "other"}))
    aws.add(make_cert(ACCOUNT_ARN + "2", domain="api.example.com"))
    module = FakeModule(check_mode, state="absent")
    result = mod.ensure_absent(module, None, None, ZONE, want())
    assert not result["changed"]
    assert aws.writes == []


def test_absent_without_zone_deletes_the_certificate_and_warns(aws, clock):
    aws.add(make_cert(ACCOUNT_ARN + "1"))
    module = FakeModule(state="absent")
    result = mod.ensure_absent(module, None, None, None, want())
    assert aws.writes == [("delete", ACCOUNT_ARN + "1")]
    assert "hosted_zone_id" not in result
    assert module.warnings


def test_absent_retries_while_in_use(aws, clock):
    aws.add(make_cert(ACCOUNT_ARN + "1"))
    aws.in_use_for = 2
    mod.ensure_absent(FakeModule(state="absent"), None, None, ZONE, want())
    assert write_kinds(aws) == ["delete", "delete", "delete", "records"]
    assert clock.sleeps == [5.0, 10.0]


def test_absent_fails_naming_the_users_when_still_in_use(aws, clock):
    aws.add(make_cert(ACCOUNT_ARN + "1", InUseBy=[ALB_ARN]))
    aws.in_use_for = 100
    with pytest.raises(AnsibleAWSError, match=f"still in use by: {ALB_ARN}") as error:
        mod.ensure_absent(FakeModule(state="absent", wait_timeout=60), None, None, ZONE, want())
    assert error.value.kwargs["in_use_by"] == [ALB_ARN]
    assert sum(clock.sleeps) <= 60
    assert "records" not in write_kinds(aws)


def test_absent_without_wait_tries_once(aws, clock):
    aws.add(make_cert(ACCOUNT_ARN + "1"))
    aws.in_use_for = 1
    with pytest.raises(AnsibleAWSError, match="still in use"):
        mod.ensure_absent(FakeModule(state="absent", wait=False), None, None, ZONE, want())
    assert clock.sleeps == []


# ---- API wrappers ----


def test_wrappers_pass_aws_retry_and_map_not_found():
    acm = MagicMock()
    acm.describe_certificate.side_effect = client_error("ResourceNotFoundException")
    assert mod.describe_certificate(acm, "arn") is None
    acm.describe_certificate.assert_called_once_with(aws_retry=True, CertificateArn="arn")
    acm.list_tags_for_certificate.side_effect = client_error("ResourceNotFoundException")
    assert mod.list_certificate_tags(acm, "arn") is None
    acm.delete_certificate.side_effect = client_error("ResourceNotFoundException")
    assert mod.delete_certificate(acm, "arn") is False


def test_delete_certificate_reports_in_use():
    acm = MagicMock()
    acm.delete_certificate.side_effect = client_error("ResourceInUseException")
    with pytest.raises(mod.CertificateInUseError):
        mod.delete_certificate(acm, "arn")
    acm.delete_certificate.side_effect = None
    assert mod.delete_certificate(acm, "arn") is True


def test_wrapper_errors_become_ansible_aws_errors():
    route53 = MagicMock()
    route53.change_resource_record_sets.side_effect = client_error("InvalidChangeBatch")
    with pytest.raises(AnsibleAWSError, match="Failed to change validation records"):
        mod.change_record_sets(route53, "Z1", [])


def test_list_certificates_asks_for_every_key_type():
    acm = MagicMock()
    acm.get_paginator.return_value.paginate.return_value.build_full_result.return_value = {"CertificateSummaryList": []}
    mod.list_certificates(acm, ["ISSUED"])
    acm.get_paginator.assert_called_once_with("list_certificates")
    acm.get_paginator.return_value.paginate.assert_called_once_with(
        Includes={"keyTypes": mod.KEY_TYPES}, CertificateStatuses=["ISSUED"]
    )


def test_get_cname_record_only_returns_the_exact_name():
    route53 = MagicMock()
    route53.list_resource_record_sets.return_value = {"ResourceRecordSets": [rrset("zzz.example.com")]}
    assert mod.get_cname_record(route53, "Z1", "_v.app.example.com.") is None
    route53.list_resource_record_sets.return_value = {"ResourceRecordSets": [rrset("app.example.com")]}
    assert mod.get_cname_record(route53, "Z1", "_V.App.example.com")["TTL"] == 300
    route53.list_resource_record_sets.assert_called_with(
        aws_retry=True, HostedZoneId="Z1", StartRecordName="_V.App.example.com", StartRecordType="CNAME", MaxItems="1"
    )


@pytest.mark.parametrize("code", ["ThrottlingException", "Throttling", "RequestInProgressException"])
def test_acm_retry_retries_throttling(monkeypatch, code):
    from ansible_collections.amazon.aws.plugins.module_utils import cloud

    monkeypatch.setattr(cloud.time, "sleep", lambda _seconds: None)
    calls = []

    @mod.acm_retry
    def flaky():
        calls.append(code)
        if len(calls) < 3:
            raise client_error(code)
        return "ok"

    assert flaky() == "ok"
    assert len(calls) == 3


# ---- main() ----


def fake_clients(certs: list[dict], records: list[dict]) -> tuple[MagicMock, MagicMock]:
    acm = MagicMock(name="acm")
    acm.get_paginator.return_value.paginate.return_value.build_full_result.return_value = {
        "CertificateSummaryList": [
            {"CertificateArn": c["CertificateArn"], "DomainName": c["DomainName"]} for c in certs
        ]
    }
    by_arn = {c["CertificateArn"]: c for c in certs}
    acm.list_tags_for_certificate.side_effect = lambda CertificateArn, **_kw: {
        "Tags": [{"Key": k, "Value": v} for k, v in by_arn[CertificateArn]["Tags"].items()]
    }
    acm.describe_certificate.side_effect = lambda CertificateArn, **_kw: {"Certificate": dict(by_arn[CertificateArn])}
    route53 = MagicMock(name="route53")
    route53.list_hosted_zones_by_name.return_value = {"HostedZones": [zone_entry("Z123")]}
    route53.list_resource_record_sets.return_value = {"ResourceRecordSets": records}
    return acm, route53


def run_main(monkeypatch, capsys, args: dict, clients: tuple | None = None) -> tuple[dict, MagicMock]:
    acm, route53 = clients or fake_clients([], [])
    client = MagicMock(side_effect=lambda service, **_kw: {"acm": acm, "route53": route53}[service])
    monkeypatch.setattr(mod.AnsibleAWSModule, "client", client)
    with patch_module_args(args), pytest.raises(SystemExit):
        mod.main()
    return json.loads(capsys.readouterr().out), client


WRITE_CALLS = (
    "request_certificate",
    "delete_certificate",
    "add_tags_to_certificate",
    "remove_tags_from_certificate",
)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"domain_name": "", "hosted_zone_name": "example.com"}, "domain_name must be a non-empty"),
        ({"domain_name": "bad..example.com", "hosted_zone_name": "example.com"}, "not a valid domain name"),
        ({"domain_name": "app.example.com"}, "one of the following is required: hosted_zone_id, hosted_zone_name"),
        (
            {"domain_name": "app.example.com", "hosted_zone_name": "example.com", "hosted_zone_id": "Z1"},
            "mutually exclusive: hosted_zone_id|hosted_zone_name",
        ),
    ],
)
def test_main_rejects_bad_input_before_any_client(monkeypatch, capsys, args, message):
    result, client = run_main(monkeypatch, capsys, dict(args, tags={"Name": "web"}))
    assert result["failed"]
    assert message in result["msg"]
    client.assert_not_called()


def test_main_rerun_is_unchanged_without_writes(monkeypatch, capsys):
    cert = make_cert(ACCOUNT_ARN + "1", InUseBy=[ALB_ARN])
    acm, route53 = fake_clients([cert], [rrset("app.example.com")])
    args = {"domain_name": "app.example.com", "hosted_zone_name": "example.com", "tags": {"Name": "web"}}
    result, client = run_main(monkeypatch, capsys, args, (acm, route53))

    assert result["changed"] is False
    assert result["certificate_arn"] == cert["CertificateArn"]
    assert result["in_use_by"] == [ALB_ARN]
    assert result["hosted_zone_id"] == "Z123"
    assert "diff" not in result
    assert [c.kwargs["retry_decorator"] for c in client.call_args_list] == [mod.acm_retry, mod.route53_retry]
    for name in WRITE_CALLS:
        getattr(acm, name).assert_not_called()
    route53.change_resource_record_sets.assert_not_called()


def test_main_check_mode_on_a_new_certificate_writes_nothing(monkeypatch, capsys):
    acm, route53 = fake_clients([], [])
    args = {
        "domain_name": "app.example.com",
        "hosted_zone_name": "example.com",
        "tags": {"Name": "web"},
        "_ansible_check_mode": True,
        "_ansible_diff": True,
    }
    result, _client = run_main(monkeypatch, capsys, args, (acm, route53))
    assert result["changed"] is True
    assert result["certificate_arn"] is None
    assert result["diff"]["after"]["domain_name"] == "app.example.com"
    for name in WRITE_CALLS:
        getattr(acm, name).assert_not_called()
    route53.change_resource_record_sets.assert_not_called()


def test_main_reports_api_failures(monkeypatch, capsys):
    acm, route53 = fake_clients([], [])
    route53.list_hosted_zones_by_name.side_effect = client_error("AccessDenied")
    args = {"domain_name": "app.example.com", "hosted_zone_name": "example.com", "tags": {"Name": "web"}}
    result, _client = run_main(monkeypatch, capsys, args, (acm, route53))
    assert result["failed"]
    assert result["msg"].startswith("Failed to list hosted zones")
    assert result["error"]["code"] == "AccessDenied"
