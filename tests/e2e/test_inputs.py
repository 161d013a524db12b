"""Every input of every role is checked before any AWS call.

The test reads every variable of every entry point of every role's ``meta/argument_specs.yml`` and
runs the playbook that uses it with one wrong value of that variable (``WRONG``: a wrong type, a value
outside the choices, out of range, or not matching the pattern AWS accepts), one variable per run so
that the message check is honest. Each run must fail, name the variable, and make no AWS request: the
local AWS API's request count does not move, and no task that calls AWS has started.

The cases live in ``localcloud/inputs.py`` (the reliability bench tries a sample of them). A variable
added to an argument spec without a wrong value there fails ``test_every_variable_has_a_wrong_value``.
Only the variables listed in ``NOT_SET_BY_USERS`` (with the reason) are left out.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from localcloud.inputs import NOT_SET_BY_USERS, WRONG, cases, refusal_problems, spec_variables

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


def test_every_variable_has_a_wrong_value():
    variables = spec_variables()
    missing = sorted(set(variables) - set(WRONG) - set(NOT_SET_BY_USERS))
    assert not missing, f"variables of the argument specs without a wrong value in WRONG: {missing}"
    unknown = sorted((set(WRONG) | set(NOT_SET_BY_USERS)) - set(variables))
    assert not unknown, f"WRONG or NOT_SET_BY_USERS name variables no argument spec has: {unknown}"
    assert not set(WRONG) & set(NOT_SET_BY_USERS)


def test_a_wrong_value_of_every_variable_is_refused_before_any_api_call(aws_api):
    """~170 runs, two at a time (the machine has two cores); each must refuse its one wrong value."""
    tried = cases()
    started = time.monotonic()
    before = aws_api.request_count()
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda case: refusal_problems(aws_api, *case), tried))
    requests = aws_api.request_count() - before
    problems = [problem for result in results for problem in result]
    print(f"{len(tried)} wrong inputs refused in {time.monotonic() - started:.0f} s, {requests} AWS requests")
    assert not problems, f"{len(problems)} problem(s):\n\n" + "\n\n".join(problems)
    assert requests == 0, f"{requests} AWS request(s) were made before a wrong input was refused"
