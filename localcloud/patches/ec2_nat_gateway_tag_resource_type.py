"""DescribeTags names a NAT gateway's resource type ``natgateway``, as AWS does.

moto derives a tag's resource type from the id's prefix and calls NAT gateways ``nat-gateway``, so a
``resource-type=natgateway`` filter (the value AWS documents for DescribeTags, and the one
amazon.aws.ec2_vpc_nat_gateway filters by when it compares a gateway's tags) finds none of their tags:
the module re-tags an existing gateway on every run and never reports it unchanged. On AWS the filter
finds them and a re-run changes nothing. Every other resource type keeps moto's name.
"""

from __future__ import annotations

from moto.ec2 import utils


def apply() -> None:
    # The one mapping that DescribeTags reads (moto.ec2.models.tags imports this very dict).
    utils.EC2_PREFIX_TO_RESOURCE["nat"] = "natgateway"
