"""`smmf state export|import`'s format (serve_app/state/backup.py): what is ours goes out and
comes back, nothing else does, and a backup holds keys only as hashes."""

import pytest
from pydantic import ValidationError

from serve_app.governance.keys import KeyRecord, hash_key
from serve_app.kv import MemoryStore
from serve_app.state.backup import StateBackup, export_state, import_state


def test_a_backup_carries_our_entries_to_another_store_and_keys_only_as_hashes():
    laptop = MemoryStore()
    record = KeyRecord(id="key-1", key_sha256=hash_key("sk-secret"), name="ci")
    laptop.put("key/key-1", record.model_dump_json())
    laptop.put("key-day-usage/key-1", '{"day": "2026-12-06", "tokens": 42}')
    laptop.put("api-model/simx", '{"name": "simx"}')
    laptop.put("stopped-model/old", '{"name": "old"}')
    laptop.put("response/resp_1", '{"id": "resp_1"}')
    laptop.put("progress/simx", "loading")  # a cluster's own: not moved
    backup = StateBackup.model_validate_json(export_state(laptop).model_dump_json())
    assert set(backup.entries) == {"key/key-1", "key-day-usage/key-1", "api-model/simx", "stopped-model/old",
                                   "response/resp_1"}
    assert "sk-secret" not in backup.model_dump_json() and hash_key("sk-secret") in backup.model_dump_json()

    cluster = MemoryStore()
    cluster.put("api-model/other", '{"name": "other"}')
    counts = import_state(cluster, backup)
    assert counts == {"key/": 1, "key-day-usage/": 1, "stopped-model/": 1, "api-model/": 1, "response/": 1}
    assert cluster.items("api-model/") == {"simx": b'{"name": "simx"}', "other": b'{"name": "other"}'}
    assert KeyRecord.model_validate_json(cluster.get("key/key-1")) == record


@pytest.mark.parametrize("entries, problem", [
    ({"progress/x": "1"}, "entry 'progress/x' is not state smmf-serve keeps"),
    ({"key/x": 1}, "Input should be a valid string"),
])
def test_a_backup_with_entries_that_are_not_ours_is_refused_by_name(entries, problem):
    with pytest.raises(ValidationError, match=problem):
        StateBackup(entries=entries)
