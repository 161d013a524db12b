# ruff: noqa: E501, W291 - the outputs are copied as the runs printed them (long lines, a trailing space after "=>")
"""How ``localcloud.inputs`` reads a refusal and batches the wrong inputs (tests/e2e/test_inputs.py runs them).

The outputs below are copied from real ``ansible-playbook`` runs of the wrong values (the default callback,
results in YAML), cut where marked. A variable may be credited only where a failure message makes it the
subject of a refusal, never where it is merely mentioned.
"""

from __future__ import annotations

import json
import re

import pytest

from localcloud.harness import Run
from localcloud.inputs import (
    WRONG,
    Group,
    Refusals,
    case_problems,
    check_dependencies,
    credited,
    failure_messages,
    plan_batches,
    refusals,
    refuse_group,
    refused_variables,
)

RECAP = (
    "\nPLAY RECAP *********************************************************************\n"
    "localhost                  : ok=12   changed=0    unreachable=0    failed=1    skipped=0    rescued=0"
    "    ignored=0   \n"
)

# provision -e '{network_state: gone, network_nat_gateways: two, ...}' (argument_spec_data cut to two
# options; their descriptions mention other variables, which must not be credited).
# Copied as printed: "{TRAILING_SPACE}" stands for the trailing space after "=>" (no trailing whitespace in
# the source), "{VALID_BOOLEANS}" for the rest of the long line.
VALID_BOOLEANS = (
    " Valid booleans include: 'yes', 1, 0, 'true', 'no', '1', 'y', 'false', 'on', 'f', 'n', '0', 'off', 't'"
)
ARGUMENT_SPEC = """\
TASK [ecs_production.platform.network : Validating arguments against arg spec validate] ***
[ERROR]: Task failed: Action failed: Validation of arguments failed:
value of network_state must be one of: present, absent, got: gone
value of network_nat_gateways must be one of: none, single, per_az, got: two
Origin: <unknown>

fatal: [localhost]: FAILED! =>{TRAILING_SPACE}
    argument_errors:
    - 'value of network_state must be one of: present, absent, got: gone'
    - 'value of network_nat_gateways must be one of: none, single, per_az, got: two'
    argument_spec_data:
        network_app_subnets_private:
            default: false
            description:
            - Run the tasks in private app subnets (no public IP; egress through O(network_nat_gateways)
                and/or O(network_vpc_endpoints)) instead of the public subnets with a
                public IP.
            type: bool
        network_vpc_cidr:
            default: 10.0.0.0/16
            description: The VPC's IPv4 CIDR block.
            type: str
    changed: false
    msg: |-
        Validation of arguments failed:
        argument 'network_app_subnets_private' is of type str and we were unable to convert to bool: The value 'maybe' is not a valid boolean.{VALID_BOOLEANS}
        value of network_state must be one of: present, absent, got: gone
        value of network_nat_gateways must be one of: none, single, per_az, got: two
    validate_args_context:
        argument_spec_name: validate
        name: network
        path: /work/wt-inputs/.collections/ansible_collections/ecs_production/platform/roles/network
        type: role
""".replace("{TRAILING_SPACE}", " ").replace("{VALID_BOOLEANS}", VALID_BOOLEANS)


def failed(msg_yaml: str, task: str = "Check the inputs") -> str:
    """A failed task as the callback prints it, around the ``msg:`` lines copied from a run."""
    return (
        f"TASK [ecs_production.platform.x : {task}] ***\n"
        "fatal: [localhost]: FAILED! => \n"
        "    changed: false\n"
        "    evaluated_to: false\n"
        f"{msg_yaml}" + RECAP
    )


# provision -e '{"network_nat_gateways": "single"}': the allowed text says "set network_app_subnets_private
# to true", which must not credit network_app_subnets_private.
NAT_GATEWAYS = failed("""\
    msg: 'network_nat_gateways is "single": NAT gateways serve private app subnets only;
        set network_app_subnets_private to true, or this to none. Nothing was changed.'
""")
# provision -e '{"platform_project": "Bad_Project", "platform_region": "mars-north-1x", ...}'
SETTINGS = failed("""\
    msg: 'platform_project is "Bad_Project": lowercase letters, digits and hyphens, starting
        with a letter (e.g. ecs-prod). platform_region is "mars-north-1x": a region name
        such as us-east-1. Nothing was changed.'
""")
# swap -e '{"color": "green", "bluegreen_lock_stale_after": 600, "bluegreen_lock_renew_seconds": 2000, ...}':
# platform_lock_stale_after is mentioned in an allowed text; bluegreen_deploy_timeout (its default) is
# refused because of the stale_after given.
RENEW = failed("""\
    msg: 'bluegreen_lock_renew_seconds is 2000: seconds between two renewals of the lock
        during a bake, 5 to 300 (at most half the lock''s expiry, platform_lock_stale_after
        600 s, so that a renewal always comes before the lock could go stale). bluegreen_lock_token
        is "(hidden)": empty (handed on by the platform role''s lock) or the token the
        lock is held under (letters, digits, _ and -, at most 128). bluegreen_deploy_timeout
        is 600: seconds, 30 to 300 (at most half the lock''s expiry, platform_lock_stale_after
        600 s). Nothing was changed.'
""")
# provision -e '{"network_availability_zones": ["us-east-1a"]}'
COUNTS = failed("""\
    msg: 'network_availability_zones is ["us-east-1a"]: none (the region''s first ones),
        or one zone per subnet of network_public_subnet_cidrs (2), at least two. The platform
        spans at least two availability zones with one public and one private subnet in
        each. Nothing was changed.'
""")
# provision -e '{"network_vpc_cidr": "10.0.0.0/33"}'
VPC_CIDR = failed("""\
    msg: network_vpc_cidr "10.0.0.0/33" is not an IPv4 network address with a prefix from
        /16 to /28 (e.g. 10.0.0.0/16).
""")
# provision -e '{"network_public_subnet_cidrs": ["10.0.1.0/24", "10.0.1.128/25"]}'
OVERLAP = failed("""\
    msg: 'network_public_subnet_cidrs: public subnets overlap: 10.0.1.0/24 and 10.0.1.128/25. '
""")
# swap -e '{"color": "green", "canary": "50,10"}' and -e '{"color": "green", "bake_seconds": "abc"}'
CANARY = failed("""\
    msg: '-e canary=50,10 (bluegreen_canary_steps): give the new colour''s share of the
        traffic at each step, as increasing percentages from 1 to 100 ending at 100 (e.g.
        -e canary=10,50,100). Nothing was changed.'
""")
BAKE = failed("""\
    msg: -e bake_seconds=abc (bluegreen_bake_seconds) must be a whole number of seconds.  Nothing
        was changed.
""")
# provision -e '{"network_private_subnet_cidrs": ["10.0.11.0/24", "nonsense"], "network_app_subnets_private":
# true, "network_app_subnet_cidrs": ["10.0.21.0/24", "nonsense"], ...}': a loop, one failed result per item.
SUBNET_ENTRIES = """\
TASK [ecs_production.platform.network : Check each subnet CIDR lies inside network_vpc_cidr] ***
ok: [localhost] => (item=network_public_subnet_cidrs: 10.0.1.0/24)
ok: [localhost] => (item=network_private_subnet_cidrs: 10.0.11.0/24)
[ERROR]: Task failed: Action failed: network_private_subnet_cidrs entry "nonsense" is not an IPv4 network inside network_vpc_cidr 10.0.0.0/16.
Origin: /work/wt-inputs/.collections/ansible_collections/ecs_production/platform/roles/network/tasks/validate.yml:41:3

41 - name: Check each subnet CIDR lies inside network_vpc_cidr
     ^ column 3

failed: [localhost] (item=network_private_subnet_cidrs: nonsense) =>{TRAILING_SPACE}
    ansible_loop_var: item
    assertion: item.0 | ansible.utils.ipv4('net') == item.0
    changed: false
    evaluated_to: false
    item:
    - nonsense
    - network_private_subnet_cidrs
    msg: network_private_subnet_cidrs entry "nonsense" is not an IPv4 network inside network_vpc_cidr
        10.0.0.0/16.
ok: [localhost] => (item=network_app_subnet_cidrs: 10.0.21.0/24)
failed: [localhost] (item=network_app_subnet_cidrs: nonsense) =>{TRAILING_SPACE}
    ansible_loop_var: item
    assertion: item.0 | ansible.utils.ipv4('net') == item.0
    changed: false
    evaluated_to: false
    item:
    - nonsense
    - network_app_subnet_cidrs
    msg: network_app_subnet_cidrs entry "nonsense" is not an IPv4 network inside network_vpc_cidr
        10.0.0.0/16.
""".replace("{TRAILING_SPACE}", " ")
# The shapes of ansible.module_utils.common.parameters for list elements and options inside an option.
ELEMENTS = failed("""\
    msg: |-
        Validation of arguments failed:
        Elements value for option 'ecs_subnet_ids' is of type dict and we were unable to convert to str: nope
        argument 'command' is of type int found in 'ecs_container_health_check'. and we were unable to convert to list: nope
        value of ecs_task_families must be one or more of: a, b. Got no match for: c
""")


@pytest.mark.parametrize(
    ("output", "refused"),
    [
        (ARGUMENT_SPEC, {"network_app_subnets_private", "network_state", "network_nat_gateways"}),
        (NAT_GATEWAYS, {"network_nat_gateways"}),
        (SETTINGS, {"platform_project", "platform_region"}),
        (RENEW, {"bluegreen_lock_renew_seconds", "bluegreen_lock_token", "bluegreen_deploy_timeout"}),
        (COUNTS, {"network_availability_zones"}),
        (VPC_CIDR, {"network_vpc_cidr"}),
        (OVERLAP, {"network_public_subnet_cidrs"}),
        (CANARY, {"bluegreen_canary_steps"}),
        (BAKE, {"bluegreen_bake_seconds"}),
        (SUBNET_ENTRIES, {"network_private_subnet_cidrs", "network_app_subnet_cidrs"}),
        (ELEMENTS, {"ecs_subnet_ids", "ecs_container_health_check", "ecs_task_families"}),
    ],
    ids=lambda value: "" if isinstance(value, str) else "+".join(sorted(value)),
)
def test_a_refusal_credits_the_variables_it_makes_its_subject(output, refused):
    assert refused_variables(output) == refused


def test_a_variable_only_mentioned_is_not_credited():
    # Each of these appears in the output, but only in passing.
    for output, mentioned in [
        (NAT_GATEWAYS, "network_app_subnets_private"),
        (ARGUMENT_SPEC, "network_vpc_endpoints"),
        (ARGUMENT_SPEC, "network_vpc_cidr"),
        (RENEW, "platform_lock_stale_after"),
        (COUNTS, "network_public_subnet_cidrs"),
        (SUBNET_ENTRIES, "network_vpc_cidr"),
        (CANARY, "canary"),
    ]:
        assert mentioned in output
        assert mentioned not in refused_variables(output), (mentioned, output)


def test_a_variable_is_the_subject_only_at_the_start_of_a_sentence():
    # A value (or an allowed text) that happens to read "V is <value>" mid-sentence credits nothing.
    owner = failed(
        """    msg: 'platform_lock_owner is "bob, whose platform_lock_wait is 5 (sic)": who holds the lock, 1 to 256
        characters (e.g. alice@laptop). Nothing was changed.'
"""
    )
    assert refused_variables(owner) == {"platform_lock_owner"}
    # The template's message for public and private subnets overlapping each other names no single culprit.
    between = failed(
        """    msg: 'network_public_subnet_cidrs and network_private_subnet_cidrs overlap: 10.0.1.0/24 and 10.0.1.0/25. '
"""
    )
    assert refused_variables(between) == set()


def test_only_failed_results_are_read():
    assert failure_messages(ARGUMENT_SPEC)[0].startswith("Validation of arguments failed:")
    assert len(failure_messages(SUBNET_ENTRIES)) == 2
    # The [ERROR] line repeats the message; it is not a result, so it is not read twice nor alone.
    assert refused_variables("[ERROR]: Task failed: Action failed: network_vpc_cidr is 1: no.\n") == set()
    ok = "ok: [localhost] => \n    msg: 'network_vpc_cidr is \"x\": nothing wrong.'\n"
    assert refused_variables(ok) == set()


def test_refusals_tell_the_argument_spec_from_the_checks():
    assert refusals(ARGUMENT_SPEC) == dict.fromkeys(
        ["network_app_subnets_private", "network_state", "network_nat_gateways"], True
    )
    assert refusals(RENEW) == dict.fromkeys(
        ["bluegreen_lock_renew_seconds", "bluegreen_lock_token", "bluegreen_deploy_timeout"], False
    )


def run(output: str, returncode: int = 2) -> Run:
    return Run(returncode, output, "")


def test_a_run_credits_only_its_own_batch_and_only_when_it_failed_before_aws():
    batch = ["network_nat_gateways", "network_app_subnets_private", "network_vpc_cidr"]
    assert credited(batch, run(NAT_GATEWAYS), {}) == {"network_nat_gateways"}
    assert credited(["network_vpc_cidr"], run(NAT_GATEWAYS), {}) == set()  # not in the batch
    assert credited(batch, run(NAT_GATEWAYS, returncode=0), {}) == set()
    aws = "TASK [ecs_production.platform.platform : Ask AWS who we are (fails here)] ***\n" + NAT_GATEWAYS
    assert credited(batch, run(aws), {}) == set()


def test_a_check_is_not_credited_when_a_variable_it_reads_shares_the_batch():
    depends = check_dependencies()
    assert "bluegreen_lock_stale_after" in depends["bluegreen_lock_renew_seconds"]
    together = ["bluegreen_lock_renew_seconds", "bluegreen_lock_stale_after", "bluegreen_lock_token"]
    assert credited(together, run(RENEW), depends) == {"bluegreen_lock_token"}
    apart = ["bluegreen_lock_renew_seconds", "bluegreen_lock_token"]
    assert credited(apart, run(RENEW), depends) == set(apart)
    # The argument spec's errors read the variable alone: credited whatever shares the batch.
    batch = ["network_app_subnets_private", "network_nat_gateways", "network_state", "network_vpc_endpoints"]
    assert depends["network_nat_gateways"] & set(batch)
    assert credited(batch, run(ARGUMENT_SPEC), depends) == set(batch) - {"network_vpc_endpoints"}


def test_the_dependencies_come_from_the_checks(tmp_path):
    depends = check_dependencies()
    assert "network_app_subnets_private" in depends["network_nat_gateways"]
    assert "network_nat_gateways" in depends["network_app_subnets_private"]  # symmetric
    assert "alb_health_check_interval" in depends["alb_health_check_timeout"]
    assert not depends.get("alb_name_prefix")
    # A check of a *_checks list reads what its ok names; any other assert ties all it reads.
    tasks = tmp_path / "validate.yml"
    tasks.write_text(
        "- name: a list\n"
        "  ansible.builtin.assert:\n"
        "    that: x__problems | length == 0\n"
        "  vars:\n"
        "    x__checks:\n"
        "      - {name: x_a, value: '{{ x_a }}', ok: '{{ x_a > x_b }}', allowed: 'more than x_c'}\n"
        "      - {name: x_c, value: '{{ x_c }}', ok: '{{ x_c > 0 }}', allowed: 'positive'}\n"
        "- name: a legacy one\n"
        "  ansible.builtin.assert:\n"
        "    that: [x_d in x_e]\n"
        "    fail_msg: x_d is not in x_e (x_f)\n"
    )
    found = check_dependencies([tasks], ["x_a", "x_b", "x_c", "x_d", "x_e", "x_f"])
    assert found == {"x_a": {"x_b"}, "x_b": {"x_a"}, "x_c": set(), "x_d": {"x_e"}, "x_e": {"x_d"}}


def test_the_planner_keeps_dependent_variables_apart_and_the_rest_together():
    depends = {"a": {"b", "c"}, "b": {"a"}, "c": {"a"}, "d": {"e"}, "e": {"d"}}
    batches = plan_batches(["a", "b", "c", "d", "e", "f"], depends)
    assert batches == [["a", "d", "f"], ["b", "c", "e"]]
    real = check_dependencies()
    names = [name for name in WRONG if name.startswith("network_")]
    planned = plan_batches(names, real)
    assert sorted(name for batch in planned for name in batch) == sorted(names)
    for batch in planned:
        for name in batch:
            assert not real.get(name, set()) & set(batch), (name, batch)


# ---- the rounds, with a fake playbook run ----------------------------------------------------------

SECRETS = ["secrets_kms_key_rotation", "secrets_name_prefix", "secrets_parameter_path", "secrets_state"]
SPEC_STAGE = {"secrets_kms_key_rotation", "secrets_state"}  # refused by the argument spec, first


def fake_run(refuses_in_a_batch=True, never=(), aws=()):
    """A playbook run that stops at its first failing stage, as ansible-playbook does: the argument spec's
    errors, then one checks list; ``never`` are not refused at all, ``aws`` reach a task that calls AWS."""
    runs = []

    def run_it(playbook, extra):
        runs.append(sorted(extra))
        wrong = [name for name in extra if name in SECRETS and name not in never]
        if len(extra) > 1 and not refuses_in_a_batch:
            return Run(2, failed("    msg: 'something is wrong. Nothing was changed.'\n"), "")
        if any(name in aws for name in extra):
            return Run(2, "TASK [ecs_production.platform.platform : Ask AWS who we are (x)] ***\n", "")
        spec = [name for name in wrong if name in SPEC_STAGE]
        if spec:
            lines = "".join(f"        value of {name} must be one of: x, got: y\n" for name in spec)
            return Run(2, failed("    msg: |-\n        Validation of arguments failed:\n" + lines), "")
        if wrong:
            checks = " ".join(f"{name} is {json.dumps(extra[name])}: something else." for name in wrong)
            return Run(2, failed(f"    msg: '{checks} Nothing was changed.'\n"), "")
        return Run(0, RECAP.replace("failed=1", "failed=0"), "")

    return run_it, runs


def refused(run_it) -> Refusals:
    report = Refusals()
    refuse_group(Group("provision", {}, "secrets", list(SECRETS)), run_it, {}, report)
    return report


def test_what_a_round_does_not_credit_goes_into_the_next():
    run_it, runs = fake_run()
    report = refused(run_it)
    assert report.problems == []
    assert runs == [SECRETS, ["secrets_name_prefix", "secrets_parameter_path"]]
    assert report.runs == 2


def test_a_variable_never_refused_ends_alone_and_is_a_problem():
    run_it, runs = fake_run(never=("secrets_parameter_path",))
    report = refused(run_it)
    assert runs == [SECRETS, ["secrets_name_prefix", "secrets_parameter_path"], ["secrets_parameter_path"]]
    assert len(report.problems) == 2, report.problems
    assert "the run passed" in report.problems[0]
    assert "the refusal does not name secrets_parameter_path as a wrong input" in report.problems[1]
    assert report.problems[0].startswith('provision -e \'{"secrets_parameter_path": "no-slash"}\'')


def test_a_round_that_credits_nothing_leaves_each_case_to_a_run_of_its_own():
    run_it, runs = fake_run(refuses_in_a_batch=False)
    report = refused(run_it)
    assert report.problems == []
    assert runs == [SECRETS] + [[name] for name in SECRETS]


def test_a_wrong_value_that_reaches_aws_is_a_problem_of_its_own():
    run_it, runs = fake_run(aws=("secrets_name_prefix",))
    report = refused(run_it)
    assert runs == [SECRETS] + [[name] for name in SECRETS]
    assert len(report.problems) == 2, report.problems
    assert all(re.search(r"secrets_name_prefix.*(does not name|a task that calls AWS)", p) for p in report.problems)


def test_a_case_alone_must_be_refused_naming_its_variable_not_just_mention_it():
    # The argument spec's dump names every variable; that is not a refusal of network_vpc_cidr.
    extra = {"network_vpc_cidr": "10.0.0.0/33"}
    problems = case_problems("provision", extra, "network_vpc_cidr", run(ARGUMENT_SPEC))
    assert problems and "does not name network_vpc_cidr" in problems[0]
    assert case_problems("provision", extra, "network_vpc_cidr", run(VPC_CIDR)) == []
    # The operator's short names are looked for anywhere in the output, as before.
    assert case_problems("swap", {"color": "green", "canary": "50,10"}, "canary", run(CANARY)) == []
