"""``python -m app.reseal``: encrypt every stored object with the current data key.

After turning encryption on, objects stored before stay readable but unencrypted until rewritten;
after a key rotation, objects stay under the old key. This command rewrites both under
``ROLLCALL_DATA_KEY`` (settings from the environment and ``.env``, as the service reads them), after
which the old keys can leave ``ROLLCALL_DATA_KEYS_OLD``. Stop the service while it runs.
"""

from __future__ import annotations

import sys

from app.commands import configure_logging
from app.settings import Settings
from app.storage import (
    EncryptingObjectStore,
    StorageUnavailableError,
    create_object_store,
)
from app.storage.encryption import reseal_all


def main() -> int:
    settings = Settings()
    configure_logging(settings.log_level, ("app",))
    store = create_object_store(**settings.storage_kwargs())
    if not isinstance(store, EncryptingObjectStore):
        sys.stderr.write("ROLLCALL_DATA_KEY is not set: nothing to encrypt with\n")
        return 2
    try:
        report = reseal_all(store)
    except StorageUnavailableError as error:
        # DataKeyError included: its message names key ids, never a key.
        sys.stderr.write(f"{error}\n")
        return 1
    sys.stdout.write(
        f"{report.examined} objects: {report.sealed_plaintext} encrypted, "
        f"{report.rekeyed} moved to data key id {store.keyring.current.id_hex}\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
