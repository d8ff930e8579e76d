"""Key files on disk: written 0600, refused when others can read them, when damaged, or when altered."""

import json
import stat

import numpy as np
import pytest

from etcbench import ciphers
from etcbench.errors import EtcbenchError


@pytest.fixture
def saved(tmp_path):
    key = ciphers.create("etc", block_size=8).generate_key(seed=5, image_size=(32, 32))
    path = tmp_path / "k.npz"
    ciphers.save_key(key, path)
    return key, path


def _rewrite(path, **changes):
    """Write the key file again with some arrays (or the settings record) replaced, keeping mode 0600."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    arrays.update(changes)
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
    path.chmod(0o600)


def _meta(path):
    with np.load(path, allow_pickle=False) as data:
        return json.loads(data["__meta__"].tobytes().decode())


def test_a_key_file_is_0600_and_loads_back_the_same_key(saved):
    key, path = saved
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ciphers.load_key(path).fingerprint == key.fingerprint == _meta(path)["fingerprint"]


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660, 0o666])
def test_group_or_world_access_is_refused(saved, mode):
    _, path = saved
    path.chmod(mode)
    with pytest.raises(EtcbenchError, match=f"readable by others \\(mode {mode:o}\\); chmod 600 it"):
        ciphers.load_key(path)


def test_an_altered_array_no_longer_matches_the_stored_fingerprint(saved):
    key, path = saved
    perm = key.arrays["block_perm"].copy()
    perm[[0, 1]] = perm[[1, 0]]
    _rewrite(path, block_perm=perm)
    with pytest.raises(EtcbenchError, match="does not match its stored fingerprint: altered or damaged"):
        ciphers.load_key(path)


def test_altered_settings_no_longer_match_the_stored_fingerprint(saved):
    _, path = saved
    meta = _meta(path)
    meta["block_size"] = 16
    _rewrite(path, __meta__=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8))
    with pytest.raises(EtcbenchError, match="does not match its stored fingerprint"):
        ciphers.load_key(path)


def test_a_key_without_a_stored_fingerprint_is_refused(saved):
    _, path = saved
    meta = _meta(path)
    del meta["fingerprint"]
    _rewrite(path, __meta__=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8))
    with pytest.raises(EtcbenchError, match="has no stored fingerprint"):
        ciphers.load_key(path)


def test_truncated_missing_and_foreign_files_are_refused(saved, tmp_path):
    _, path = saved
    data = path.read_bytes()
    for cut in (10, len(data) // 2, len(data) - 5):
        path.write_bytes(data[:cut])
        with pytest.raises(EtcbenchError, match="is not a valid etcbench key"):
            ciphers.load_key(path)
    with pytest.raises(EtcbenchError, match="does not exist"):
        ciphers.load_key(tmp_path / "missing.npz")
    other = tmp_path / "other.npz"
    np.savez(other, x=np.zeros(3))
    other.chmod(0o600)
    with pytest.raises(EtcbenchError, match="is not a valid etcbench key"):
        ciphers.load_key(other)
    settings_only = tmp_path / "settings.npz"
    np.savez(settings_only, __meta__=np.frombuffer(b'{"scheme": "etc"}', dtype=np.uint8))
    settings_only.chmod(0o600)
    with pytest.raises(EtcbenchError, match="not a valid etcbench key"):
        ciphers.load_key(settings_only)
