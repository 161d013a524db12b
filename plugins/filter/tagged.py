# Copyright: Contributors to the ecs_production.platform collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from ansible.errors import AnsibleFilterError


def _as_dict(tags):
    """Tags as a dict, whether given as a dict or as boto3's [{Key, Value}] list."""
    if tags is None:
        return {}
    if isinstance(tags, dict):
        return tags
    if isinstance(tags, list):
        return dict((t.get("Key", t.get("key")), t.get("Value", t.get("value"))) for t in tags)
    raise AnsibleFilterError(f"tagged: tags must be a dict or a list of Key/Value pairs, not {type(tags).__name__}")


def tagged(resources, identity, attribute="tags"):
    """Keep the resources whose tags include every key and value of identity."""
    if not isinstance(identity, dict) or not identity:
        raise AnsibleFilterError("tagged: the identity must be a non-empty dict of tags")
    selected = []
    for resource in resources or []:
        tags = _as_dict(resource.get(attribute))
        if all(tags.get(key) == value for key, value in identity.items()):
            selected.append(resource)
    return selected


class FilterModule:
    def filters(self):
        return {"tagged": tagged}
