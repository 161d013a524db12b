"""Unit tests for ecs_production.platform.ssm_secret: the password generator, input validation, and the
decisions the module makes against a fake parameter store standing in for its own AWS call wrappers."""

from __future__ import annotations

import collections
import json
import string
from unittest import mock

import botocore.exceptions
import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.amazon.aws.plugins.module_utils.exceptions import AnsibleAWSError
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.ecs_production.platform.plugins.modules import ssm_secret

NAME = "/app/prod/db/master_password"
OLD_VALUE = "Old-Value-1234567890abcdefghijkl"
DEFAULT_ALPHABET = set(string.ascii_letters + string.digits + string.punctuation) - set("/@\"'\\`")
KEY_ARNS = {
    "alias/aws/ssm": "arn:aws:kms:us-east-1:123456789012:key/aws-managed",
    "alias/app": "arn:aws:kms:us-east-1:123456789012:key/app",
    "arn:aws:kms:us-east-1:123456789012:key/app": "arn:aws:kms:us-east-1:123456789012:key/app",
    "app": "arn:aws:kms:us-east-1:123456789012:key/app",
}


def policy(**options) -> tuple[int, str]:
    params = {"length": 32, "character_classes": None, "alphabet": None, "exclude_characters": ""}
    params.update(options)
    return ssm_secret.password_policy(params)


# ---- password generation ------------------------------------------------------------------------


def test_default_alphabet_is_printable_ascii_without_what_rds_rejects_and_quoting_characters():
    _length, alphabet = policy()
    assert set(alphabet) == DEFAULT_ALPHABET
    assert len(alphabet) == 88
    assert not set(alphabet) & set('/@" ')


@pytest.mark.parametrize("length", [8, 9, 32, 255, 4096])
def test_generated_password_has_the_length_and_only_alphabet_characters(length):
    password = ssm_secret.generate_password(*policy(length=length))
    assert len(password) == length
    assert set(password) <= DEFAULT_ALPHABET


def test_every_password_holds_every_class_even_at_the_minimum_length():
    for _attempt in range(2000):
        password = ssm_secret.generate_password(*policy(length=8))
        assert any(c in string.ascii_lowercase for c in password)
        assert any(c in string.ascii_uppercase for c in password)
        assert any(c in string.digits for c in password)
        assert any(c in string.punctuation for c in password)


def test_a_class_of_a_single_character_is_still_covered():
    length, alphabet = policy(alphabet="aB1" + "!#$%&()*+,-.:;<=>?[]^_{|}~", length=14)
    for _attempt in range(200):
        password = ssm_secret.generate_password(length, alphabet)
        assert {"a", "B", "1"} <= set(password)


def test_exclude_characters_are_never_used():
    length, alphabet = policy(exclude_characters="abcXYZ0:?#%&=+")
    assert not set(alphabet) & set("abcXYZ0:?#%&=+")
    passwords = "".join(ssm_secret.generate_password(length, alphabet) for _attempt in range(200))
    assert not set(passwords) & set("abcXYZ0:?#%&=+")


def test_character_classes_select_the_alphabet_and_each_is_covered():
    length, alphabet = policy(character_classes=["lowercase", "digits"], length=20)
    assert set(alphabet) == set(string.ascii_lowercase + string.digits)
    password = ssm_secret.generate_password(length, alphabet)
    assert set(password) <= set(alphabet)
    assert any(c.isdigit() for c in password)
    assert any(c.islower() for c in password)


def test_an_explicit_alphabet_is_used_as_given_deduplicated_and_without_default_exclusions():
    _length, alphabet = policy(alphabet="ffeeddccbbaa9876543210 @/")
    assert alphabet == " /0123456789@abcdef"


def test_passwords_are_uniformly_distributed_over_the_alphabet():
    """Chi-squared over 64,000 characters: the statistic's mean is 87 (sd 13); 200 is ~8.5 sd out."""
    length, alphabet = policy()
    counts = collections.Counter("".join(ssm_secret.generate_password(length, alphabet) for _attempt in range(2000)))
    expected = 2000 * length / len(alphabet)
    chi_squared = sum((counts[c] - expected) ** 2 / expected for c in alphabet)
    assert set(counts) == set(alphabet)
    assert chi_squared < 200


def test_passwords_do_not_repeat():
    passwords = {ssm_secret.generate_password(*policy(length=16)) for _attempt in range(1000)}
    assert len(passwords) == 1000


def test_randomness_comes_from_the_secrets_module(monkeypatch):
    picks = iter("aA1!" + "a" * 100)
    monkeypatch.setattr(ssm_secret.secrets, "choice", lambda _alphabet: next(picks))
    assert ssm_secret.generate_password(8, "".join(sorted(DEFAULT_ALPHABET))) == "aA1!aaaa"
    assert "random" not in vars(ssm_secret)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"length": 7}, "length must be between 8 and 4096, not 7"),
        ({"length": 4097}, "length must be between 8 and 4096, not 4097"),
        ({"character_classes": ["digits"], "exclude_characters": string.digits}, "no characters are left"),
        ({"alphabet": "abc", "exclude_characters": "abc"}, "no characters are left"),
        ({"alphabet": "0123456789", "length": 12}, "bits of entropy, fewer than 48"),
        ({"alphabet": "pässwörd-alphabet"}, "printable ASCII"),
        ({"alphabet": "tab\there-and-more"}, "printable ASCII"),
    ],
)
def test_bad_password_options_are_refused(options, message):
    with pytest.raises(ssm_secret.PasswordPolicyError, match=message):
        policy(**options)


# ---- decisions against a fake parameter store --------------------------------------------------


class Failed(Exception):
    pass


class FakeModule:
    """The slice of AnsibleAWSModule the decision functions use."""

    def __init__(self, check_mode=False, diff=True, **params):
        self.params = {
            "name": NAME,
            "state": "present",
            "kms_key_id": "alias/aws/ssm",
            "description": None,
            "tier": None,
            "length": 32,
            "character_classes": None,
            "alphabet": None,
            "exclude_characters": "",
            "rotate": False,
            "return_value": False,
            "tags": None,
            "purge_tags": True,
        }
        self.params.update(params)
        self.check_mode = check_mode
        self._diff = diff
        self.no_log_values = set()

    def fail_json(self, msg, **_kwargs):
        raise Failed(msg)


class FakeStore:
    """Stands in for the module's AWS wrappers; records every write and every read of a value."""

    def __init__(self, parameter=None, value=None, tags=None, created_by_another=None):
        self.parameter = parameter
        self.value = value
        self.tags = dict(tags or {})
        self.created_by_another = created_by_another
        self.writes = []
        self.value_reads = 0

    def install(self, monkeypatch):
        for name in (
            "describe_parameter",
            "get_parameter_arn",
            "get_parameter_value",
            "create_parameter",
            "overwrite_parameter",
            "delete_parameter",
            "list_parameter_tags",
            "add_parameter_tags",
            "remove_parameter_tags",
            "kms_key_arn",
        ):
            monkeypatch.setattr(ssm_secret, name, getattr(self, name))
        monkeypatch.setattr(ssm_secret.time, "sleep", lambda _seconds: None)
        return self

    def describe_parameter(self, _client, _name):
        return dict(self.parameter) if self.parameter else None

    def get_parameter_arn(self, _client, name):
        return f"arn:aws:ssm:us-east-1:123456789012:parameter{name}"

    def get_parameter_value(self, _client, _name):
        self.value_reads += 1
        return self.value

    def _store(self, params, version):
        self.parameter = {
            "Name": params["Name"],
            "Type": params["Type"],
            "KeyId": params["KeyId"],
            "Version": version,
            "Tier": params.get("Tier", "Standard"),
            "DataType": "text",
        }
        if params.get("Description") is not None:
            self.parameter["Description"] = params["Description"]
        self.value = params["Value"]

    def create_parameter(self, _client, **params):
        self.writes.append(("create", params))
        if self.created_by_another:
            self.parameter, self.value = self.created_by_another
            return None
        self._store(params, 1)
        self.tags = {tag["Key"]: tag["Value"] for tag in params.get("Tags", [])}
        return {"Version": 1, "Tier": self.parameter["Tier"]}

    def overwrite_parameter(self, _client, **params):
        self.writes.append(("overwrite", params))
        version = self.parameter["Version"] + 1
        self._store(params, version)
        return {"Version": version, "Tier": self.parameter["Tier"]}

    def delete_parameter(self, _client, name):
        self.writes.append(("delete", name))
        self.parameter = None
        return True

    def list_parameter_tags(self, _client, _name):
        return dict(self.tags)

    def add_parameter_tags(self, _client, _name, tags):
        self.writes.append(("tag", tags))
        self.tags.update(tags)

    def remove_parameter_tags(self, _client, _name, keys):
        self.writes.append(("untag", keys))
        for key in keys:
            self.tags.pop(key)

    def kms_key_arn(self, _client, key_id):
        return KEY_ARNS.get(key_id)


def existing(**overrides):
    parameter = {
        "Name": NAME,
        "Type": "SecureString",
        "KeyId": "alias/aws/ssm",
        "Version": 3,
        "Tier": "Standard",
        "Description": "master password",
        "DataType": "text",
    }
    parameter.update(overrides)
    return parameter


def present(store, check_mode=False, **params):
    module = FakeModule(check_mode=check_mode, **params)
    result = ssm_secret.ensure_present(module, "ssm", "kms", ssm_secret.checked_policy(module))
    return module, result


def assert_value_hidden(result, *values):
    text = json.dumps(result, default=str)
    for value in values:
        assert value not in text


CHECK_MODE = pytest.mark.parametrize("check_mode", [False, True], ids=["apply", "check"])


@CHECK_MODE
def test_an_absent_parameter_is_created_with_a_new_value(monkeypatch, check_mode):
    store = FakeStore().install(monkeypatch)
    module, result = present(store, check_mode, description="db", tags={"App": "x"}, kms_key_id="alias/app")

    assert result["changed"] and result["value_changed"]
    assert result["type"] == "SecureString" and result["kms_key_id"] == "alias/app" and result["version"] == 1
    assert result["tags"] == {"App": "x"}
    assert "value" not in result
    assert result["diff"]["before"] == {}
    assert result["diff"]["after"]["value"] == "<new random value>"
    (generated,) = module.no_log_values
    assert len(generated) == 32
    assert_value_hidden(result, generated)
    if check_mode:
        assert store.writes == []
        assert "arn" not in result
    else:
        assert store.writes == [
            (
                "create",
                {
                    "Name": NAME,
                    "Type": "SecureString",
                    "KeyId": "alias/app",
                    "Description": "db",
                    "Value": generated,
                    "Tags": [{"Key": "App", "Value": "x"}],
                },
            )
        ]
        assert result["arn"].endswith(f":parameter{NAME}")


@CHECK_MODE
def test_an_unchanged_parameter_is_left_alone_without_reading_its_value(monkeypatch, check_mode):
    store = FakeStore(existing(), OLD_VALUE, {"App": "x"}).install(monkeypatch)
    _module, result = present(store, check_mode, description="master password", tags={"App": "x"})

    assert not result["changed"] and not result["value_changed"]
    assert store.writes == [] and store.value_reads == 0
    assert result["version"] == 3
    assert result["diff"]["before"] == result["diff"]["after"]
    assert result["diff"]["after"]["value"] == "<hidden>"


@CHECK_MODE
def test_rotate_writes_a_new_value_and_keeps_key_description_and_tier(monkeypatch, check_mode):
    store = FakeStore(existing(KeyId="alias/app", Tier="Advanced"), OLD_VALUE).install(monkeypatch)
    module, result = present(store, check_mode, rotate=True, kms_key_id="alias/app")

    assert result["changed"] and result["value_changed"]
    assert result["version"] == 4
    assert result["diff"]["after"]["value"] == "<new random value>"
    (rotated,) = module.no_log_values
    assert rotated != OLD_VALUE
    assert_value_hidden(result, rotated, OLD_VALUE)
    if check_mode:
        assert store.writes == []
    else:
        assert store.writes == [
            (
                "overwrite",
                {
                    "Name": NAME,
                    "Type": "SecureString",
                    "KeyId": "alias/app",
                    "Description": "master password",
                    "Tier": "Advanced",
                    "Value": rotated,
                },
            )
        ]


@CHECK_MODE
def test_a_new_kms_key_re_encrypts_the_same_value(monkeypatch, check_mode):
    store = FakeStore(existing(), OLD_VALUE).install(monkeypatch)
    module, result = present(store, check_mode, kms_key_id="alias/app")

    assert result["changed"] and not result["value_changed"]
    assert result["kms_key_id"] == "alias/app"
    assert result["diff"]["before"]["kms_key_id"] == "alias/aws/ssm"
    assert result["diff"]["after"]["kms_key_id"] == "alias/app"
    assert result["diff"]["after"]["value"] == "<hidden>"
    assert_value_hidden(result, OLD_VALUE)
    if check_mode:
        assert store.writes == [] and store.value_reads == 0
    else:
        assert module.no_log_values == {OLD_VALUE}
        assert store.writes[0][1]["Value"] == OLD_VALUE
        assert store.writes[0][1]["KeyId"] == "alias/app"
        assert store.writes[0][1]["Description"] == "master password"
        assert store.value == OLD_VALUE


@pytest.mark.parametrize("same_key", ["app", "arn:aws:kms:us-east-1:123456789012:key/app"])
def test_the_same_kms_key_named_another_way_is_no_change(monkeypatch, same_key):
    store = FakeStore(existing(KeyId="alias/app"), OLD_VALUE).install(monkeypatch)
    _module, result = present(store, kms_key_id=same_key)
    assert not result["changed"]
    assert store.writes == []


def test_a_kms_key_that_does_not_exist_fails_without_writing(monkeypatch):
    store = FakeStore(existing(), OLD_VALUE).install(monkeypatch)
    with pytest.raises(Failed, match="KMS key alias/missing not found. Nothing was changed."):
        present(store, kms_key_id="alias/missing")
    assert store.writes == []


def test_a_kms_key_that_cannot_be_described_fails_with_advice(monkeypatch):
    store = FakeStore(existing(), OLD_VALUE).install(monkeypatch)

    def denied(client, key_id):
        raise AnsibleAWSError(message="Failed to describe KMS key", exception=Exception("AccessDenied"))

    monkeypatch.setattr(ssm_secret, "kms_key_arn", denied)
    with pytest.raises(AnsibleAWSError, match="allow kms:DescribeKey or give kms_key_id as alias/aws/ssm"):
        present(store, kms_key_id="alias/app")
    assert store.writes == []


@CHECK_MODE
def test_a_new_description_rewrites_the_same_value(monkeypatch, check_mode):
    store = FakeStore(existing(), OLD_VALUE).install(monkeypatch)
    _module, result = present(store, check_mode, description="renamed")

    assert result["changed"] and not result["value_changed"]
    assert result["description"] == "renamed"
    assert result["diff"]["after"]["description"] == "renamed"
    if check_mode:
        assert store.writes == []
    else:
        assert [(kind, params["Description"], params["Value"]) for kind, params in store.writes] == [
            ("overwrite", "renamed", OLD_VALUE)
        ]


@CHECK_MODE
def test_tier_is_upgraded_but_never_downgraded(monkeypatch, check_mode):
    store = FakeStore(existing(), OLD_VALUE).install(monkeypatch)
    _module, result = present(store, check_mode, tier="Advanced")
    assert result["changed"] and result["tier"] == "Advanced"
    assert len(store.writes) == (0 if check_mode else 1)

    store = FakeStore(existing(Tier="Advanced"), OLD_VALUE).install(monkeypatch)
    with pytest.raises(Failed, match="cannot downgrade"):
        present(store, check_mode, tier="Standard")
    assert store.writes == []

    _module, result = present(store, check_mode, tier="Intelligent-Tiering")
    assert not result["changed"]


@CHECK_MODE
@pytest.mark.parametrize(
    ("tags", "purge_tags", "expected", "writes"),
    [
        ({"App": "x", "Team": "db"}, True, {"App": "x", "Team": "db"}, [("untag", ["Old"]), ("tag", {"Team": "db"})]),
        ({"Team": "db"}, True, {"Team": "db"}, [("untag", ["App", "Old"]), ("tag", {"Team": "db"})]),
        ({"Team": "db"}, False, {"App": "x", "Old": "y", "Team": "db"}, [("tag", {"Team": "db"})]),
        ({}, True, {}, [("untag", ["App", "Old"])]),
        (None, True, {"App": "x", "Old": "y"}, []),
    ],
)
def test_tags_are_reconciled(monkeypatch, check_mode, *, tags, purge_tags, expected, writes):
    store = FakeStore(existing(), OLD_VALUE, {"App": "x", "Old": "y"}).install(monkeypatch)
    _module, result = present(store, check_mode, tags=tags, purge_tags=purge_tags)

    assert result["changed"] == bool(writes)
    assert result["tags"] == expected
    assert not result["value_changed"]
    assert store.writes == ([] if check_mode else writes)


@CHECK_MODE
@pytest.mark.parametrize("state", ["present", "absent"])
def test_a_parameter_of_another_type_is_refused_untouched(monkeypatch, check_mode, state):
    store = FakeStore(existing(Type="String"), "plain").install(monkeypatch)
    module = FakeModule(check_mode=check_mode, state=state, rotate=True)
    with pytest.raises(Failed, match="exists as a String parameter; ssm_secret manages SecureString"):
        if state == "present":
            ssm_secret.ensure_present(module, "ssm", "kms", ssm_secret.checked_policy(module))
        else:
            ssm_secret.ensure_absent(module, "ssm")
    assert store.writes == []


def test_a_parameter_created_concurrently_by_another_writer_keeps_its_value(monkeypatch):
    store = FakeStore(created_by_another=(existing(Version=1), OLD_VALUE)).install(monkeypatch)
    _module, result = present(store, description="master password")

    assert [kind for kind, _params in store.writes] == ["create"]
    assert store.value == OLD_VALUE
    assert not result["changed"] and not result["value_changed"]


@CHECK_MODE
def test_return_value_returns_the_stored_value_unmasked(monkeypatch, check_mode):
    store = FakeStore(existing(), OLD_VALUE).install(monkeypatch)
    module, result = present(store, check_mode, return_value=True)
    assert result["value"] == OLD_VALUE
    assert module.no_log_values == set()


@CHECK_MODE
def test_return_value_returns_a_new_value_except_in_check_mode(monkeypatch, check_mode):
    store = FakeStore().install(monkeypatch)
    _module, result = present(store, check_mode, return_value=True)
    if check_mode:
        assert "value" not in result
    else:
        assert result["value"] == store.value
        assert store.value_reads == 0


@CHECK_MODE
def test_absent_deletes_an_existing_parameter(monkeypatch, check_mode):
    store = FakeStore(existing(), OLD_VALUE, {"App": "x"}).install(monkeypatch)
    module = FakeModule(check_mode=check_mode, state="absent")
    result = ssm_secret.ensure_absent(module, "ssm")

    assert result["changed"]
    assert result["diff"] == {
        "before": {
            "name": NAME,
            "type": "SecureString",
            "kms_key_id": "alias/aws/ssm",
            "description": "master password",
            "tier": "Standard",
            "version": 3,
            "tags": {"App": "x"},
            "value": "<hidden>",
        },
        "after": {},
    }
    assert store.writes == ([] if check_mode else [("delete", NAME)])


@CHECK_MODE
def test_absent_is_no_change_when_already_absent(monkeypatch, check_mode):
    store = FakeStore().install(monkeypatch)
    result = ssm_secret.ensure_absent(FakeModule(check_mode=check_mode, state="absent"), "ssm")
    assert result == {"changed": False, "name": NAME}
    assert store.writes == []


def test_read_back_waits_for_the_written_version(monkeypatch):
    store = FakeStore(existing(Version=3)).install(monkeypatch)
    versions = iter([None, existing(Version=3), existing(Version=4)])
    monkeypatch.setattr(ssm_secret, "describe_parameter", lambda _client, _name: next(versions))
    assert ssm_secret.read_back("ssm", NAME, 4)["Version"] == 4
    store.parameter = None
    monkeypatch.setattr(ssm_secret, "describe_parameter", lambda _client, _name: None)
    with pytest.raises(AnsibleAWSError, match="did not show version 1"):
        ssm_secret.read_back("ssm", NAME, 1)


# ---- the whole module through main() -------------------------------------------------------------


@pytest.fixture
def clients(monkeypatch):
    """The AWS clients main() asks for; calls on them would mean a wrapper was bypassed."""
    made = mock.Mock(side_effect=lambda service, **_kwargs: mock.NonCallableMock(name=service))
    monkeypatch.setattr(AnsibleAWSModule, "client", lambda _self, *args, **kwargs: made(*args, **kwargs))
    return made


def run_main(capsys, **args):
    args.setdefault("name", NAME)
    args.setdefault("region", "us-east-1")
    with patch_module_args(args), pytest.raises(SystemExit) as exit_info:
        ssm_secret.main()
    output = capsys.readouterr().out
    return exit_info.value.code, json.loads(output), output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"length": 4}, "length must be between 8 and 4096"),
        ({"length": 5000}, "length must be between 8 and 4096"),
        ({"alphabet": "0123456789", "length": 10}, "bits of entropy"),
        ({"character_classes": ["digits"], "exclude_characters": string.digits}, "no characters are left"),
        ({"alphabet": "abcdefghijklmnop", "character_classes": ["digits"]}, "mutually exclusive"),
        ({"character_classes": ["symbols"]}, "character_classes"),
        ({"return_value": True}, "run the task with no_log: true"),
        ({"return_value": True, "state": "absent"}, "run the task with no_log: true"),
    ],
)
def test_main_refuses_bad_input_before_any_aws_client_exists(capsys, clients, args, message):
    code, result, _output = run_main(capsys, **args)
    assert code == 1
    assert result["failed"]
    assert message in result["msg"]
    clients.assert_not_called()


@CHECK_MODE
def test_main_creates_and_never_outputs_the_value(monkeypatch, capsys, clients, check_mode):
    store = FakeStore().install(monkeypatch)
    code, result, output = run_main(
        capsys, _ansible_check_mode=check_mode, _ansible_diff=True, tags={"App": "x"}, description="db"
    )

    assert code == 0
    assert result["changed"] and result["value_changed"]
    assert result["diff"]["after"]["value"] == "<new random value>"
    assert "value" not in result
    assert [call.args[0] for call in clients.call_args_list] == ["ssm", "kms"]
    assert all(call.kwargs["retry_decorator"] is not None for call in clients.call_args_list)
    if check_mode:
        assert store.writes == []
    else:
        assert store.value and store.value not in output


def test_main_masks_the_value_in_a_failure(monkeypatch, capsys, clients):
    store = FakeStore(existing(), OLD_VALUE).install(monkeypatch)

    def overwrite(client, **params):
        error = botocore.exceptions.ClientError(
            {"Error": {"Code": "ValidationException", "Message": f"Value {params['Value']} is not valid"}},
            "PutParameter",
        )
        raise AnsibleAWSError(message="Failed to update parameter", exception=error)

    monkeypatch.setattr(ssm_secret, "overwrite_parameter", overwrite)
    code, result, output = run_main(capsys, kms_key_id="alias/app")

    assert code == 1
    assert "Failed to update parameter" in result["msg"]
    assert OLD_VALUE not in output
    assert "********" in result["msg"]
    assert store.writes == []


def test_main_returns_the_value_when_asked_under_no_log(monkeypatch, capsys, clients):
    FakeStore(existing(), OLD_VALUE).install(monkeypatch)
    code, result, _output = run_main(capsys, return_value=True, _ansible_no_log=True)
    assert code == 0
    assert not result["changed"]
    assert result["value"] == OLD_VALUE


def test_main_deletes(monkeypatch, capsys, clients):
    store = FakeStore(existing(), OLD_VALUE).install(monkeypatch)
    code, result, _output = run_main(capsys, state="absent")
    assert code == 0
    assert result["changed"]
    assert store.writes == [("delete", NAME)]
    assert [call.args[0] for call in clients.call_args_list] == ["ssm"]
