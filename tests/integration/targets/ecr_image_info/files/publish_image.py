"""Test setup only: publish an image tag to ECR without Docker, with PutImage and a synthetic Docker v2
schema 2 manifest (the config digest is derived from --seed, so each seed is its own image and several tags
given together name the same image). Prints {"digest": ..., "tags": [...]} as JSON.

Usage: publish_image.py --endpoint URL --repository NAME --seed TEXT --tag TAG [--tag TAG ...]
"""

import argparse
import hashlib
import json

import boto3


def manifest(seed: str) -> str:
    def digest(text: str) -> str:
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()

    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": 1024,
                "digest": digest(f"config {seed}"),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": 4096,
                    "digest": digest(f"layer {seed}"),
                }
            ],
        },
        sort_keys=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--repository", required=True)
    parser.add_argument("--seed", required=True)
    parser.add_argument("--tag", action="append", required=True)
    args = parser.parse_args()
    ecr = boto3.client(
        "ecr",
        region_name=args.region,
        endpoint_url=args.endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 - the local AWS API takes any credentials
    )
    body = manifest(args.seed)
    digests = {
        ecr.put_image(repositoryName=args.repository, imageManifest=body, imageTag=tag)["image"]["imageId"][
            "imageDigest"
        ]
        for tag in args.tag
    }
    print(json.dumps({"digest": digests.pop(), "tags": args.tag, "others": sorted(digests)}))


if __name__ == "__main__":
    main()
