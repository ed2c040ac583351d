"""The hub's keys: which secrets a run needs, the demo's own keys, and the refusal to run on a key anyone
can read in this repository.

A production run (anything but ``hub demo`` and the tests) needs, in its environment:

* ``HUB_PERSON_KEY_SECRET``: the HMAC-SHA256 key of ``person_key`` (models/sql/warehouse/dim_person.sql);
* ``HUB_NATIONAL_KEY_SECRET``: the key of the national tables' ``zjsjwyxbs`` (pipelines/national.py);
* ``HUB_KMS_MASTER_KEYS``: the master keys that encrypt restricted datasets (hub/encryption.py).

Each must be set, at least 16 characters (the KMS keys: 16, 24 or 32 bytes) and none of the values shipped
here (the demo's and the tests' keys, and those of earlier versions). ``hub demo`` sets ``HUB_MODE=demo``
and the tests ``HUB_MODE=test``: only then are the demo keys accepted. A refusal is one line that names the
variable and never shows its value.
"""

from __future__ import annotations

from hub.encryption import KeyConfigError, master_keys
from hub.settings import environ

MODE_VAR = "HUB_MODE"
DEMO_MODES = ("demo", "test")
PERSON_KEY_VAR = "HUB_PERSON_KEY_SECRET"
NATIONAL_KEY_VAR = "HUB_NATIONAL_KEY_SECRET"
KMS_VAR = "HUB_KMS_MASTER_KEYS"
MIN_SECRET_CHARS = 16

# The demo's keys: named so that nobody mistakes them for real ones. Public, since they are in this file.
DEMO_KEYS = {
    PERSON_KEY_VAR: "demo-only-person-key-not-for-production",
    NATIONAL_KEY_VAR: "demo-only-national-key-not-for-production",
    KMS_VAR: "hub_footer:ZGVtby1vbmx5LWttcy1rZXktbm90LWZvci1wcm9kISE=",  # b'demo-only-kms-key-not-for-prod!!'
}
# Every key value the repository has ever shipped (demo, tests, earlier defaults): never accepted in production.
SHIPPED_SECRETS = frozenset({
    *DEMO_KEYS.values(),
    "campus-data-hub-simulation-key", "test-secret",
    "test-only-person-key-not-for-production", "test-only-national-key-not-for-production",
})
SHIPPED_MASTER_KEYS = frozenset({
    "ZGVtby1vbmx5LWttcy1rZXktbm90LWZvci1wcm9kISE=",  # demo
    "dGVzdC1vbmx5LWttcy1rZXktbm90LWZvci1wcm9kISE=",  # tests
    "dGVzdC1vbmx5LWtleS10ZXN0LW9ubHkta2V5LTMyYnk=",  # tests, earlier
    "c2ltdWxhdGlvbi1vbmx5LWtleS0tY2hhbmdlLW1lISE=",  # the Makefile's and demo's, earlier
})


def is_demo(env: dict[str, str] | None = None) -> bool:
    env = environ() if env is None else env
    return env.get(MODE_VAR, "").strip().lower() in DEMO_MODES


def check_keys(env: dict[str, str] | None = None) -> None:
    """Raise KeyConfigError (one line naming the variable) unless the keys of a run are usable.

    In demo/test mode a key must only be set; elsewhere it must also be long enough and not shipped here.
    """
    env = environ() if env is None else dict(env)
    demo = is_demo(env)
    for var in (PERSON_KEY_VAR, NATIONAL_KEY_VAR):
        value = env.get(var, "")
        if not value:
            if demo and var == NATIONAL_KEY_VAR and env.get(PERSON_KEY_VAR):
                continue  # the demo and tests may fall back to the person key
            raise KeyConfigError(f"{var} is not set: a run needs its own secret (see docs/security.md)")
        if demo:
            continue
        if value in SHIPPED_SECRETS or value.startswith(("demo-only-", "test-only-")):
            raise KeyConfigError(f"{var} is a key shipped in the repository (demo or test only): set a secret "
                                 "of your own (see docs/security.md), or run `hub demo`")
        if len(value) < MIN_SECRET_CHARS:
            raise KeyConfigError(f"{var} is shorter than {MIN_SECRET_CHARS} characters: set a long random "
                                 "secret (see docs/security.md)")
    keys_value = env.get(KMS_VAR, "")
    if not keys_value:
        raise KeyConfigError(f"{KMS_VAR} is not set: restricted datasets need a master key (see docs/security.md)")
    keys = master_keys(keys_value)
    if not demo:
        import base64

        shipped = {base64.b64decode(k) for k in SHIPPED_MASTER_KEYS}
        for key_id, key in keys.items():
            if key in shipped:
                raise KeyConfigError(f"{KMS_VAR}: key {key_id!r} is a key shipped in the repository (demo or "
                                     "test only): set a master key of your own (see docs/security.md)")

