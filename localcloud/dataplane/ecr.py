"""Images in the local ECR: publishing a version without a Docker engine, and the pull check of a task.

There is no container engine here: every image runs the same code, ``app/``, with the version its
task definition's environment names. What the registry decides is whether a tag *exists*: a task
whose image tag is not in the local ECR fails the way a failed pull does on Fargate
(``CannotPullContainerError``). ``localcloud publish <tag>`` is the local equivalent of CI's
``docker push``: ``put_image`` with a synthetic image manifest, which ``describe_images`` then lists.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re

MANIFEST_MEDIA_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
_ECR_IMAGE = re.compile(
    r"^(?P<registry>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/"
    r"(?P<repository>[a-z0-9][a-z0-9._/-]*)(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?$"
)


@dataclasses.dataclass(frozen=True)
class ImageRef:
    registry_id: str
    region: str
    repository: str
    tag: str | None
    digest: str | None

    @property
    def image_id(self) -> dict[str, str]:
        return {"imageDigest": self.digest} if self.digest else {"imageTag": self.tag or "latest"}


def parse_image(image: str) -> ImageRef | None:
    """An ECR image reference, or None for anything else (Docker Hub, a private registry...)."""
    match = _ECR_IMAGE.match(image.strip())
    if not match:
        return None
    return ImageRef(match["registry"], match["region"], match["repository"], match["tag"], match["digest"])


def synthetic_manifest(repository: str, tag: str) -> str:
    """A Docker image manifest (schema 2) whose digests derive from the repository and tag: each
    version is a distinct image, as a build would make it, and publishing is repeatable."""

    def digest(kind: str) -> str:
        return "sha256:" + hashlib.sha256(f"localcloud {kind} {repository}:{tag}".encode()).hexdigest()

    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": 1024,
                "digest": digest("config"),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": 4096,
                    "digest": digest("layer"),
                }
            ],
        },
        separators=(",", ":"),
    )


def publish(ecr, repository: str, tag: str) -> tuple[str, bool]:
    """Register ``tag`` in ``repository`` (which must exist, as for ``docker push``).

    Returns (image digest, whether it was new). Publishing a tag that exists with the same image is
    a no-op; a tag that exists with another image fails on an immutable repository, as in ECR.
    """
    from botocore.exceptions import ClientError

    existing = image_digest(ecr, repository, tag)
    if existing:
        return existing, False
    try:
        response = ecr.put_image(
            repositoryName=repository,
            imageTag=tag,
            imageManifest=synthetic_manifest(repository, tag),
            imageManifestMediaType=MANIFEST_MEDIA_TYPE,
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ImageAlreadyExistsException":
            return image_digest(ecr, repository, tag) or "", False
        raise
    return response["image"]["imageId"]["imageDigest"], True


def image_digest(ecr, repository: str, tag: str, registry_id: str | None = None) -> str | None:
    """The digest of ``repository:tag``, or None when the tag (or the repository) does not exist."""
    from botocore.exceptions import ClientError

    kwargs = {"registryId": registry_id} if registry_id else {}
    try:
        images = ecr.describe_images(repositoryName=repository, imageIds=[{"imageTag": tag}], **kwargs)["imageDetails"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("ImageNotFoundException", "RepositoryNotFoundException"):
            return None
        raise
    return images[0]["imageDigest"] if images else None


def pull_error(ecr_for_region, image: str) -> str | None:
    """Why pulling ``image`` fails (the stopped reason Fargate gives), or None when it can run.

    ``ecr_for_region(region)`` returns an ECR client of that region.
    """
    from botocore.exceptions import ClientError

    ref = parse_image(image)
    prefix = "CannotPullContainerError: pull image manifest has been retried 1 time(s): failed to resolve ref"
    if ref is None:
        return f"{prefix} {image}: only images in the local ECR can run in the local cloud (there is no Docker engine)"
    ecr = ecr_for_region(ref.region)
    try:
        kwargs = {"registryId": ref.registry_id}
        found = ecr.describe_images(repositoryName=ref.repository, imageIds=[ref.image_id], **kwargs)["imageDetails"]
    except ClientError as exc:
        code = exc.response["Error"]["Code"]
        if code == "RepositoryNotFoundException":
            return f"{prefix} {image}: repository {ref.repository} not found"
        if code == "ImageNotFoundException":
            return f"{prefix} {image}: not found"
        raise
    return None if found else f"{prefix} {image}: not found"
