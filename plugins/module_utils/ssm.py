# Copyright: Contributors to the ecs_production.platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""SSM Parameter Store calls shared by the modules that keep something in a parameter: ``ssm_secret`` (a
generated secret), ``environment_lock`` (the lock, written only if absent) and ``bluegreen_info`` (which
reads the lock). Each takes a client made with a retry decorator and raises ``AnsibleAWSError``."""

from typing import Any
from typing import Dict
from typing import List
from typing import Optional

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.errors import AWSErrorHandler
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry
from ansible_collections.amazon.aws.plugins.module_utils.tagging import ansible_dict_to_boto3_tag_list
from ansible_collections.amazon.aws.plugins.module_utils.tagging import boto3_tag_list_to_ansible_dict

# SSM answers "ThrottlingException" (and "TooManyUpdates" to writes of one parameter in a burst), which
# AWSRetry does not retry by default.
SSM_RETRY = AWSRetry.jittered_backoff(retries=10, catch_extra_error_codes=["ThrottlingException", "TooManyUpdates"])


class SSMErrorHandler(AWSErrorHandler):
    @classmethod
    def _is_missing(cls):
        return is_boto3_error_code("ParameterNotFound")


@SSMErrorHandler.list_error_handler("read parameter")
def get_parameter(client, name: str, decrypt: bool = False) -> Optional[Dict[str, Any]]:
    """The parameter as GetParameter returns it (a SecureString's value decrypted with ``decrypt``); None when it
    does not exist."""
    params: Dict[str, Any] = {"Name": name}
    if decrypt:
        params["WithDecryption"] = True
    return client.get_parameter(aws_retry=True, **params)["Parameter"]


@SSMErrorHandler.common_error_handler("create parameter")
def create_parameter(client, **params: Any) -> Optional[Dict[str, Any]]:
    """put_parameter without Overwrite; None when another writer created the parameter first."""
    try:
        return client.put_parameter(aws_retry=True, Overwrite=False, **params)
    except is_boto3_error_code("ParameterAlreadyExists"):
        return None


@SSMErrorHandler.common_error_handler("update parameter")
def overwrite_parameter(client, **params: Any) -> Dict[str, Any]:
    return client.put_parameter(aws_retry=True, Overwrite=True, **params)


@SSMErrorHandler.deletion_error_handler("delete parameter")
def delete_parameter(client, name: str) -> bool:
    client.delete_parameter(aws_retry=True, Name=name)
    return True


@SSMErrorHandler.list_error_handler("list parameter tags", {})
def list_parameter_tags(client, name: str) -> Dict[str, str]:
    response = client.list_tags_for_resource(aws_retry=True, ResourceType="Parameter", ResourceId=name)
    return boto3_tag_list_to_ansible_dict(response.get("TagList", []))


@SSMErrorHandler.common_error_handler("tag parameter")
def add_parameter_tags(client, name: str, tags: Dict[str, str]) -> None:
    client.add_tags_to_resource(
        aws_retry=True, ResourceType="Parameter", ResourceId=name, Tags=ansible_dict_to_boto3_tag_list(tags)
    )


@SSMErrorHandler.common_error_handler("untag parameter")
def remove_parameter_tags(client, name: str, keys: List[str]) -> None:
    client.remove_tags_from_resource(aws_retry=True, ResourceType="Parameter", ResourceId=name, TagKeys=keys)
