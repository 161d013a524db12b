"""Images that are what they say: ``localcloud publish`` snapshots a build context into the local
image store, the digest in the local ECR derives from the content, a task runs its image's snapshot
(not the checkout's live ``app/``) with the image's own venv, and snapshots nothing uses any more are
collected."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from localcloud.dataplane import ecr, images
from localcloud.dataplane.images import ImageError, ImageStore, content_digest, context_files, parse_dockerfile

from .conftest import REPO, dp_wait_until

pytestmark = pytest.mark.slow


def app_copy(tmp_path: Path, name: str, marker: str | None = None) -> Path:
    """A copy of app/ whose ``GET /`` also answers ``"release": marker`` (unchanged without one)."""
    context = tmp_path / name
    shutil.copytree(REPO / "app", context, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    if marker is not None:
        views = context / "items_api" / "views.py"
        text = views.read_text()
        needle = 'return jsonify(service="items-api", **identity, openapi="/openapi.json")'
        assert needle in text
        views.write_text(text.replace(needle, needle.replace("openapi=", f"release={marker!r}, openapi=")))
    return context


def layers(cloud) -> set[str]:
    root = Path(cloud.state_dir) / "images" / "layers"
    return {p.name for p in root.iterdir() if not p.name.startswith(".")} if root.is_dir() else set()


def image_ids(cloud, repository: str = "items") -> list[dict]:
    return sorted(
        (i.get("imageTag", ""), i["imageDigest"])
        for i in cloud.api.client("ecr").list_images(repositoryName=repository)["imageIds"]
    )


@pytest.fixture(scope="module")
def cloud(dp_cloud):
    return dp_cloud


# -- the build context, without a cloud ---------------------------------------------------------------


def test_the_snapshot_is_what_dockerignore_lets_in_and_the_digest_follows_every_byte(tmp_path):
    context = app_copy(tmp_path, "ctx")
    (context / "items_api" / "__pycache__").mkdir(exist_ok=True)
    (context / "items_api" / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"\0cache")
    (context / "notes.txt").write_text("not in the image")
    files = context_files(context)
    assert "Dockerfile" in files and "requirements-lock.txt" in files and "items_api/views.py" in files
    assert not [f for f in files if f.startswith("tests/") or "__pycache__" in f or f in ("README.md", "notes.txt")]
    digest, size = content_digest(context, files)
    assert size == sum((context / f).stat().st_size for f in files)
    # A change outside the image changes nothing; a byte of the image or its executable bit, everything.
    (context / "README.md").write_text("edited")
    (context / "tests" / "test_new.py").write_text("def test(): pass\n")
    assert content_digest(context, context_files(context))[0] == digest
    views = context / "items_api" / "views.py"
    views.write_text(views.read_text() + "\n")
    changed = content_digest(context, context_files(context))[0]
    assert changed != digest
    views.chmod(0o755)
    assert content_digest(context, context_files(context))[0] not in (digest, changed)
    # Without a .dockerignore: everything but the caches and the tests.
    (context / ".dockerignore").unlink()
    assert "notes.txt" in context_files(context) and not [f for f in context_files(context) if f.startswith("tests/")]


def test_the_dockerfile_says_which_requirements_and_which_command():
    parsed = parse_dockerfile((REPO / "app" / "Dockerfile").read_text())
    # COPY requirements-lock.txt /tmp/requirements-lock.txt, then pip install -r /tmp/requirements-lock.txt
    assert parsed.requirements == ("requirements-lock.txt",) and parsed.no_deps
    assert parsed.cmd == ("gunicorn", "-c", "gunicorn.conf.py", "items_api:create_app()")
    other = parse_dockerfile(
        "FROM python\nRUN pip install \\\n    -r base.txt && pip install --requirement=extra.txt\nCMD python -m app\n"
    )
    assert other.requirements == ("base.txt", "extra.txt") and not other.no_deps
    assert other.cmd == ("/bin/sh", "-c", "python -m app")
    # Through COPY (into a directory, or relative to WORKDIR); a COPY --from another stage is not the context's.
    copied = parse_dockerfile(
        "FROM python AS build\nWORKDIR /src\nCOPY deps/base.txt reqs/\nCOPY --chown=1:1 extra.txt /opt/x.txt\n"
        "COPY --from=other /out.txt /out.txt\n"
        'RUN pip install -r reqs/base.txt -r /opt/x.txt -r /out.txt\nCMD ["python", "-m", "app"]\n'
    )
    assert copied.requirements == ("deps/base.txt", "extra.txt", "/out.txt")


# -- publishing ---------------------------------------------------------------------------------------


def test_two_contexts_give_two_digests_and_the_same_context_twice_the_same_image(cloud, tmp_path):
    one, two = app_copy(tmp_path, "one", "one"), app_copy(tmp_path, "two", "two")
    first = cloud.publish("digest-one", one)
    second = cloud.publish("digest-two", two)
    assert first.new and second.new and first.digest != second.digest and first.layer != second.layer
    before = image_ids(cloud)
    started = time.monotonic()
    again = cloud.publish("digest-one", one)
    assert time.monotonic() - started < 2.0  # the bound for re-publishing an unchanged context
    assert (again.new, again.digest, again.layer) == (False, first.digest, first.layer)
    assert image_ids(cloud) == before  # no new image
    # The same content in another directory is the same image.
    copy = tmp_path / "copy"
    shutil.copytree(one, copy)
    assert cloud.publish("digest-one", copy).digest == first.digest

    ecr_client = cloud.api.client("ecr")
    described = ecr_client.describe_images(repositoryName="items", imageIds=[{"imageTag": "digest-one"}])
    assert described["imageDetails"][0]["imageDigest"] == first.digest
    manifest = ecr_client.batch_get_image(repositoryName="items", imageIds=[{"imageDigest": first.digest}])["images"][
        0
    ]["imageManifest"]
    # ECR's digest: the sha256 of the manifest, whose one layer is the snapshot of the content.
    assert first.digest == "sha256:" + hashlib.sha256(manifest.encode()).hexdigest()
    assert json.loads(manifest)["layers"][0]["digest"] == f"sha256:{first.layer}"
    assert first.layer == content_digest(one, context_files(one))[0]
    assert {first.layer, second.layer} <= layers(cloud)
    assert (Path(cloud.state_dir) / "images" / "layers" / first.layer / "items_api" / "views.py").read_text() == (
        one / "items_api" / "views.py"
    ).read_text()


def test_an_immutable_repository_refuses_another_image_under_an_existing_tag(cloud, tmp_path):
    ecr_client = cloud.api.client("ecr")
    ecr_client.create_repository(repositoryName="frozen", imageTagMutability="IMMUTABLE")
    store = ImageStore(Path(cloud.state_dir))
    old, new = app_copy(tmp_path, "old", "old"), app_copy(tmp_path, "new", "new")
    first = ecr.publish(ecr_client, store, "frozen", "v1", old)
    with pytest.raises(ImageError) as refused:
        ecr.publish(ecr_client, store, "frozen", "v1", new)
    message = str(refused.value)
    assert "ImageTagAlreadyExistsException" in message and "immutable" in message and first.digest in message
    assert [(i["imageTag"], i["imageDigest"]) for i in ecr_client.list_images(repositoryName="frozen")["imageIds"]] == [
        ("v1", first.digest)
    ]
    new_layer = content_digest(new, context_files(new))[0]
    assert new_layer not in layers(cloud)  # nothing of the refused image is left
    # What the API says, as ECR says it.
    manifest, _ = images.manifest_for(*store.snapshot(new))
    with pytest.raises(ecr_client.exceptions.ClientError) as direct:
        ecr_client.put_image(repositoryName="frozen", imageTag="v1", imageManifest=manifest)
    assert direct.value.response["Error"]["Code"] == "ImageTagAlreadyExistsException"
    # The same content under the same tag is a no-op, not an error.
    assert ecr.publish(ecr_client, store, "frozen", "v1", old).new is False


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing-repository", "no repository nope in the local ECR"),
        ("no-dockerfile", "has no Dockerfile"),
        ("no-app", "the app module items_api that the Dockerfile's CMD"),
        ("no-gunicorn-config", "the gunicorn config gunicorn.conf.py that CMD names is not in the image"),
        ("requirements-left-out", "the Dockerfile installs requirements-lock.txt, which is not in the image"),
        ("no-cmd", "the Dockerfile has no CMD"),
        ("not-a-directory", "is not a directory"),
        ("tag:.v1", "'.v1' is not a valid image tag"),
        ("tag:-v1", "'-v1' is not a valid image tag"),
        ("tag:v1:2", "'v1:2' is not a valid image tag"),
        ("tag:", "'' is not a valid image tag"),
        ("tag:" + "v" * 129, "is not a valid image tag"),
    ],
)
def test_bad_input_is_a_clear_error_and_nothing_is_published(cloud, tmp_path, case, message):
    context, repository, tag = app_copy(tmp_path, "ctx", "bad"), "items", "bad-input"
    if case == "missing-repository":
        repository = "nope"
    elif case == "no-dockerfile":
        (context / "Dockerfile").unlink()
    elif case == "no-app":
        shutil.rmtree(context / "items_api")
    elif case == "no-gunicorn-config":
        (context / "gunicorn.conf.py").unlink()
    elif case == "requirements-left-out":
        (context / ".dockerignore").write_text((context / ".dockerignore").read_text() + "requirements-lock.txt\n")
    elif case == "no-cmd":
        dockerfile = context / "Dockerfile"
        dockerfile.write_text("\n".join(li for li in dockerfile.read_text().splitlines() if not li.startswith("CMD")))
    elif case == "not-a-directory":
        context = context / "Dockerfile"
    else:
        tag = case.split(":", 1)[1]
    before, stored = image_ids(cloud), layers(cloud)
    with pytest.raises(ImageError) as error:
        cloud.publish(tag, context) if repository == "items" else ecr.publish(
            cloud.api.client("ecr"), ImageStore(Path(cloud.state_dir)), repository, tag, context
        )
    assert message in str(error.value)
    assert image_ids(cloud) == before
    assert layers(cloud) == stored


# -- running -----------------------------------------------------------------------------------------


def get(address: str, path: str) -> dict:
    with urllib.request.urlopen(f"http://{address}{path}", timeout=5) as response:
        return json.loads(response.read())


def test_a_task_runs_its_images_snapshot_with_the_images_venv_and_the_collector_keeps_it(cloud, tmp_path):
    cloud.database or cloud.create_database()
    marker = f"release-{uuid.uuid4().hex[:8]}"
    context = app_copy(tmp_path, "release", marker)
    published = cloud.publish("snap", context)
    # Changing the context after the publish changes nothing of the image.
    (context / "items_api" / "views.py").write_text("raise SystemExit('the live context is not the image')\n")

    started = time.monotonic()
    cloud.service("snap", cloud.task_definition("snap", "snap", start_period=60), 1)
    try:
        task = dp_wait_until(lambda: (cloud.healthy_tasks("snap") or [None])[0], 60, what="a healthy task")
    except BaseException:
        for t in cloud.tasks("snap"):  # what the tasks said, to see why
            print(t.task_id, t.last_status, t.stop_reason, t.health_status)
            for name in ("stderr.log", "health.log"):
                print(name, (t.directory / name).read_text()[-1500:] if (t.directory / name).exists() else "-")
        raise
    print(f"\n[images] first task of a published image healthy after {time.monotonic() - started:.1f} s")
    assert get(f"{task.ip}:8000", "/")["release"] == marker  # the snapshot's code ...
    assert "release" not in (REPO / "app" / "items_api" / "views.py").read_text()  # ... not the checkout's
    layer_dir = Path(cloud.state_dir) / "images" / "layers" / published.layer
    assert task.image.root == layer_dir and task.image.layer_digest == f"sha256:{published.layer}"
    with open(f"/proc/{task.pid}/cwd/items_api/views.py") as running_code:  # the process runs in the snapshot
        assert marker in running_code.read()
    # With the image's own dependencies: its venv has what requirements-lock.txt pins and nothing else.
    venv = task.image.venv
    assert ImageStore(Path(cloud.state_dir)).venv_kind(venv) == "linked"  # the checkout's requirements: linked
    site = next(venv.glob("lib/python*/site-packages"))
    assert (site / "flask").exists() and (site / "gunicorn").exists() and not (site / "moto").exists()
    with open(f"/proc/{task.pid}/environ", "rb") as environ:
        path = next(v for v in environ.read().split(b"\0") if v.startswith(b"PATH="))
    assert path.decode() == f"PATH={venv / 'bin'}"
    assert task.status()["image_layer"] == f"sha256:{published.layer}"  # `localcloud status --json` says so

    # The image goes from ECR: the running task keeps its snapshot through a collection ...
    ecr_client = cloud.api.client("ecr")
    ecr_client.batch_delete_image(repositoryName="items", imageIds=[{"imageTag": "snap"}])
    other = app_copy(tmp_path, "other", "other")
    cloud.publish("snap-other", other)  # a publish collects
    assert published.layer in layers(cloud)
    assert get(f"{task.ip}:8000", "/")["release"] == marker
    # ... and once the task has stopped, the next collection removes it.
    cloud.remove_service("snap")
    removed = cloud.publish("snap-other", other).removed
    assert published.layer in removed and published.layer not in layers(cloud)


def test_old_snapshots_go_when_no_image_uses_them(cloud, tmp_path):
    ecr_client = cloud.api.client("ecr")
    ecr_client.create_repository(repositoryName="moving", imageTagMutability="MUTABLE")
    store = ImageStore(Path(cloud.state_dir))
    first = ecr.publish(ecr_client, store, "moving", "latest", app_copy(tmp_path, "a", "a"))
    kept = ecr.publish(ecr_client, store, "moving", "pinned", app_copy(tmp_path, "b", "b"))
    assert {first.layer, kept.layer} <= layers(cloud)
    # The tag moves to another image: the old one is no image's any more, and goes.
    second = ecr.publish(ecr_client, store, "moving", "latest", app_copy(tmp_path, "c", "c"))
    assert second.layer != first.layer and first.layer in second.removed
    assert first.layer not in layers(cloud) and {kept.layer, second.layer} <= layers(cloud)
    # At `localcloud up` the API is empty: nothing is kept.
    with store.lock():
        assert set(store.collect(set(), tasks=False)) >= {kept.layer, second.layer}
    assert layers(cloud) == set()


def test_a_new_requirements_set_gets_its_own_venv_built_once_by_pip(cloud, tmp_path):
    context = app_copy(tmp_path, "deps")
    (context / "requirements-lock.txt").write_text("six==1.17.0\n")  # not the checkout's set: pip builds it
    store = ImageStore(Path(cloud.state_dir))
    snapshot, _, key = store.snapshot(context)
    started = time.monotonic()
    image = store.runnable(snapshot.digest)
    built = time.monotonic() - started
    assert store.venv_kind(image.venv) == "pip" and image.venv.name == key
    site = next(image.venv.glob("lib/python*/site-packages"))
    assert (site / "six.py").exists() and not (site / "flask").exists()
    started = time.monotonic()
    assert store.runnable(snapshot.digest).venv == image.venv  # cached: not built again
    assert time.monotonic() - started < min(1.0, built)
