"""ECR PutImage on an immutable repository refuses a *different* image under a tag that exists with
``ImageTagAlreadyExistsException`` ("The image tag 'v2' already exists in the 'repo' repository and
cannot be overwritten because the repository is immutable."), as AWS does. moto answers
``ImageAlreadyExistsException`` for it, the error AWS keeps for pushing the *same* image (same
manifest) under a tag it already has, so a client cannot tell "already there" from "refused"."""

from __future__ import annotations

from moto.core.exceptions import ServiceException
from moto.ecr.models import ECRBackend


class ImageTagAlreadyExistsException(ServiceException):
    code = "ImageTagAlreadyExistsException"

    def __init__(self, repository_name: str, image_tag: str):
        super().__init__(
            f"The image tag '{image_tag}' already exists in the '{repository_name}' repository and cannot be "
            "overwritten because the repository is immutable."
        )


def apply() -> None:
    original = ECRBackend.put_image

    def put_image(self, repository_name, image_manifest, image_tag, *args, **kwargs):
        repository = self.repositories.get(repository_name)
        if repository is not None and image_tag and repository.is_tag_immutable():
            tagged = [image for image in repository.images if image_tag in (image.image_tags or [])]
            if tagged and all(image.image_manifest != image_manifest for image in tagged):
                raise ImageTagAlreadyExistsException(repository_name, image_tag)
        return original(self, repository_name, image_manifest, image_tag, *args, **kwargs)

    ECRBackend.put_image = put_image
