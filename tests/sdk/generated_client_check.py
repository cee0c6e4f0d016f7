"""Drives a running Workjet with a client generated from its /v1/openapi.json by
openapi-python-client: creates, lists, gets and revokes a key, and reads a documented error.
Called by tests/integration/openapi.rs (which generates `workjet_api_client` on PYTHONPATH)
and prints one JSON object; the key comes as an environment variable."""

import json
import os

from workjet_api_client import AuthenticatedClient
from workjet_api_client.api.keys import create_key, get_key, list_keys, revoke_key
from workjet_api_client.models import CreateKeyRequest, CreatedKey, ErrorBody, KeyList, KeyObject, PermissionsType1Item

client = AuthenticatedClient(base_url=os.environ["WJ_BASE_URL"], token=os.environ["WJ_KEY"], raise_on_unexpected_status=True)
results = {}

created = create_key.sync(client=client, body=CreateKeyRequest(name="Generated client", permissions=[PermissionsType1Item.INFERENCE]))
assert isinstance(created, CreatedKey), created
results["created"] = created.to_dict()

listed = list_keys.sync(client=client)
assert isinstance(listed, KeyList), listed
results["listed"] = [k.id for k in listed.data]

got = get_key.sync(created.id, client=client)
assert isinstance(got, KeyObject), got
results["got"] = got.to_dict()

revoked = revoke_key.sync(created.id, client=client)
assert isinstance(revoked, KeyObject), revoked
results["revoked"] = revoked.to_dict()

missing = get_key.sync_detailed(999999, client=client)
assert isinstance(missing.parsed, ErrorBody), missing
results["missing"] = {"status": int(missing.status_code), "code": missing.parsed.error.code}

print(json.dumps(results))
