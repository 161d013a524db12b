"""Every input of every role is checked before any AWS call.

The test reads every variable of every entry point of every role's ``meta/argument_specs.yml`` and
runs the playbook that uses it with one wrong value of that variable (``WRONG``: a wrong type, a value
outside the choices, out of range, or not matching the pattern AWS accepts). Each wrong value must be
refused by a failed run that names the variable as a wrong input, and no AWS request may be made: the
local AWS API's request count does not move, and no task that calls AWS has started.

The wrong values of one role's variables are batched (``localcloud.inputs.refuse_all``): one run carries
several, and credits only the variables its failure messages make the subject of a refusal
(``refused_variables``: an argument spec's error, or a check's "V is <value>: ..."), never one merely
mentioned; two variables whose checks read each other never share a run. A run stops at the first failing
stage, so what it does not credit goes into the next run; what batches stop crediting runs alone, as one
case. The operator's short names (``-e color=``, ...) run one per run.

The cases live in ``localcloud/inputs.py`` (the reliability bench tries a sample of them). A variable
added to an argument spec without a wrong value there fails ``test_every_variable_has_a_wrong_value``.
Only the variables listed in ``NOT_SET_BY_USERS`` (with the reason) are left out.
"""

from __future__ import annotations

import time

import pytest

from localcloud.inputs import NOT_SET_BY_USERS, WRONG, refuse_all, spec_variables

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


def test_every_variable_has_a_wrong_value():
    variables = spec_variables()
    missing = sorted(set(variables) - set(WRONG) - set(NOT_SET_BY_USERS))
    assert not missing, f"variables of the argument specs without a wrong value in WRONG: {missing}"
    unknown = sorted((set(WRONG) | set(NOT_SET_BY_USERS)) - set(variables))
    assert not unknown, f"WRONG or NOT_SET_BY_USERS name variables no argument spec has: {unknown}"
    assert not set(WRONG) & set(NOT_SET_BY_USERS)


def test_a_wrong_value_of_every_variable_is_refused_before_any_api_call(aws_api):
    """~180 cases in about a quarter as many runs, two at a time (the machine has two cores)."""
    started = time.monotonic()
    before = aws_api.request_count()
    report = refuse_all(aws_api, workers=2)
    requests = aws_api.request_count() - before
    print(
        f"{report.cases} wrong inputs refused by {report.runs} runs in {time.monotonic() - started:.0f} s, "
        f"{requests} AWS requests"
    )
    print("\n".join(report.log))
    problems = report.problems
    assert not problems, f"{len(problems)} problem(s):\n\n" + "\n\n".join(problems)
    assert requests == 0, f"{requests} AWS request(s) were made before a wrong input was refused"
