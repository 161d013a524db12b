"""ECS ListTagsForResource answers {"tags": []} for an untagged resource, as AWS does. moto's
serializer drops the empty list, and community.aws.ecs_tag fails reading it (KeyError 'tags')."""

from __future__ import annotations

import json

from moto.ecs.responses import EC2ContainerServiceResponse


def apply() -> None:
    def list_tags_for_resource(self) -> str:
        tags = self.ecs_backend.list_tags_for_resource(self._get_param("resourceArn"))
        return json.dumps({"tags": tags or []})

    EC2ContainerServiceResponse.list_tags_for_resource = list_tags_for_resource
