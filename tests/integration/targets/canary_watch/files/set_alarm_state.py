#!/usr/bin/env python
"""Test helper: set a CloudWatch alarm's state, as CloudWatch would on evaluating it (the local AWS API never
evaluates alarms by itself). Usage: set_alarm_state.py ENDPOINT_URL ALARM_NAME STATE [REASON]"""

import sys

import boto3


def main(argv):
    endpoint_url, name, state = argv[:3]
    reason = argv[3] if len(argv) > 3 else f"set to {state} by the canary_watch integration target"
    client = boto3.client(
        "cloudwatch",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    client.set_alarm_state(AlarmName=name, StateValue=state, StateReason=reason)
    found = client.describe_alarms(AlarmNames=[name])["MetricAlarms"]
    if not found or found[0]["StateValue"] != state:
        sys.exit(f"alarm {name} is not {state} after set_alarm_state")
    print(f"{name}: {state}")


if __name__ == "__main__":
    main(sys.argv[1:])
