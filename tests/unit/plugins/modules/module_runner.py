"""What the module tests share: run a module's ``main()`` with a fake AWS client and its arguments, and return
the JSON it exits with (``exit_json`` or ``fail_json``)."""

from __future__ import annotations

import json

import pytest
from ansible.module_utils.testing import patch_module_args


def run_module(module, monkeypatch, capsys, client, **args) -> dict:
    """``module.main()`` with every ``module.client(...)`` answered by ``client``; region us-east-1 unless given."""
    monkeypatch.setattr(module.AnsibleAWSModule, "client", lambda _self, _service, retry_decorator=None: client)  # noqa: ARG005
    with patch_module_args(dict({"region": "us-east-1"}, **args)), pytest.raises(SystemExit):
        module.main()
    return json.loads(capsys.readouterr().out)
