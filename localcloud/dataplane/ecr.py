"""Images in the local ECR: publishing a build context without a Docker engine, and the pull of a task.

``localcloud publish <tag> --context DIR`` is the local equivalent of CI's ``docker build`` and
``docker push``: the context is snapshotted into the local image store
(:mod:`localcloud.dataplane.images`), content-addressed, and ``PutImage`` registers a manifest
whose one layer is that snapshot, so the digest ``describe_images`` shows is derived from the
content. A task pulls the image its task definition names: a tag or digest that is not in the local
ECR fails the way a failed pull does on Fargate (``CannotPullContainerError``); one that is runs its
own snapshot (:func:`pull`).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from localcloud.dataplane import images

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


@dataclasses.dataclass(frozen=True)
class Published:
    digest: str  # the image digest in ECR
    new: bool  # False: the tag already had this very image
    layer: str  # the snapshot (sha256 hex)
    removed: tuple[str, ...]  # snapshots the collection removed


def check_tag(tag: str) -> None:
    if not images.TAG_PATTERN.match(tag or ""):
        raise images.ImageError(
            f"{tag!r} is not a valid image tag: up to 128 letters, digits, '_', '.' and '-', "
            "not starting with '.' or '-'"
        )


def publish(ecr, store: images.ImageStore, repository: str, tag: str, context: Path, *, regions=()) -> Published:
    """Snapshot ``context`` and register it as ``repository:tag`` (the repository must exist, as for
    ``docker push``). The same content under the same tag is a no-op; another content under an
    existing tag is refused by an immutable repository (``ImageTagAlreadyExistsException``) and
    replaces the tag in a mutable one. Snapshots nothing references any more are collected after.

    ``regions``: ``(region, ecr client)`` of every other region whose images keep their snapshots.
    Raises :class:`images.ImageError` (bad input, said clearly) or botocore's ClientError.
    """
    from botocore.exceptions import ClientError

    check_tag(tag)
    try:
        ecr.describe_repositories(repositoryNames=[repository])
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "RepositoryNotFoundException":
            raise images.ImageError(f"no repository {repository} in the local ECR (provision creates it)") from exc
        raise
    store.inspect(context)  # a context that cannot be an image is refused before anything is written
    clients = [ecr, *[client for _, client in regions]]
    with store.lock():
        try:
            result = _put(ecr, store, repository, tag, context)
        except BaseException:
            collect(store, clients)  # the snapshot of a refused image goes again: nothing is published
            raise
        return dataclasses.replace(result, removed=tuple(collect(store, clients)))


def _put(ecr, store: images.ImageStore, repository: str, tag: str, context: Path) -> Published:
    from botocore.exceptions import ClientError

    snapshot, dockerfile, key = store.snapshot(context)
    store.runnable(snapshot.digest)  # its venv, as docker build installs the requirements: once per set
    manifest, digest = images.manifest_for(snapshot, dockerfile, key)
    existing = image_digest(ecr, repository, tag)
    if existing == digest:
        return Published(digest, False, snapshot.digest, ())
    try:
        response = ecr.put_image(
            repositoryName=repository,
            imageTag=tag,
            imageManifest=manifest,
            imageManifestMediaType=images.MANIFEST_MEDIA_TYPE,
            imageDigest=digest,
        )
    except ClientError as exc:
        error = exc.response["Error"]
        if error["Code"] == "ImageTagAlreadyExistsException":
            raise images.ImageError(
                f"{repository}:{tag} exists with another image ({existing}) and the repository's tags are immutable: "
                f"publish this content under a new tag (it would be {digest}). "
                f"ECR said: {error['Code']}: {error.get('Message', '')}"
            ) from exc
        raise
    return Published(response["image"]["imageId"]["imageDigest"], True, snapshot.digest, ())


def referenced_layers(ecr) -> set[str]:
    """The snapshots of every image in every repository of one region's ECR."""
    layers = set()
    for page in ecr.get_paginator("describe_repositories").paginate():
        for repository in page["repositories"]:
            name = repository["repositoryName"]
            ids = [
                image_id
                for listed in ecr.get_paginator("list_images").paginate(repositoryName=name)
                for image_id in listed["imageIds"]
            ]
            for first in range(0, len(ids), 100):
                found = ecr.batch_get_image(repositoryName=name, imageIds=ids[first : first + 100])["images"]
                layers.update(filter(None, (images.layer_of(i.get("imageManifest", "")) for i in found)))
    return layers


def collect(store: images.ImageStore, clients) -> list[str]:
    """Remove the snapshots that no image in these ECR clients' regions and no running task uses."""
    referenced: set[str] = set()
    for client in clients:
        referenced |= referenced_layers(client)
    return store.collect(referenced)


def image_digest(ecr, repository: str, tag: str, registry_id: str | None = None) -> str | None:
    """The digest of ``repository:tag``, or None when the tag (or the repository) does not exist."""
    from botocore.exceptions import ClientError

    kwargs = {"registryId": registry_id} if registry_id else {}
    try:
        details = ecr.describe_images(repositoryName=repository, imageIds=[{"imageTag": tag}], **kwargs)["imageDetails"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("ImageNotFoundException", "RepositoryNotFoundException"):
            return None
        raise
    return details[0]["imageDigest"] if details else None


class PullError(Exception):
    """Why a task cannot pull its image: the stopped reason Fargate gives."""


def pull(ecr_for_region, image: str) -> str:
    """The snapshot (sha256 hex) of ``image`` as ECR resolves it now (tag or ``@sha256:`` digest);
    PullError says why it cannot be pulled. ``ecr_for_region(region)`` is an ECR client of that region.
    """
    from botocore.exceptions import ClientError

    ref = parse_image(image)
    prefix = "CannotPullContainerError: pull image manifest has been retried 1 time(s): failed to resolve ref"
    if ref is None:
        raise PullError(
            f"{prefix} {image}: only images in the local ECR can run in the local cloud (there is no Docker engine)"
        )
    ecr = ecr_for_region(ref.region)
    try:
        found = ecr.batch_get_image(repositoryName=ref.repository, imageIds=[ref.image_id], registryId=ref.registry_id)[
            "images"
        ]
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "RepositoryNotFoundException":
            raise PullError(f"{prefix} {image}: repository {ref.repository} not found") from exc
        raise
    if not found:
        raise PullError(f"{prefix} {image}: not found")
    layer = images.layer_of(found[0].get("imageManifest", ""))
    if layer is None:
        raise PullError(
            f"{prefix} {image}: its manifest has no layer of the local image store "
            "(publish it with `localcloud publish`, not PutImage alone)"
        )
    return layer


def pull_error(ecr_for_region, image: str) -> str | None:
    """Why pulling ``image`` fails, or None when it can be pulled (see :func:`pull`)."""
    try:
        pull(ecr_for_region, image)
    except PullError as exc:
        return str(exc)
    return None
