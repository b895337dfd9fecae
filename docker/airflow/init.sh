#!/usr/bin/env bash
# airflow-init: migrate the Airflow metadata database, create each dataset's registry pool (one slot: its
# promote and rollback tasks take turns; Airflow never schedules a task whose pool is missing), then fix the
# passwords of the UI/API user `admin` and of the prediction server's user `lifeboat-feedback` (role op).
#
# SimpleAuthManager reads the passwords of the users in [core] simple_auth_manager_users from the JSON file
# [core] simple_auth_manager_passwords_file and only generates (and prints) passwords for users missing
# there; writing the file here, before the api-server starts, makes AIRFLOW_ADMIN_PASSWORD and
# AIRFLOW_FEEDBACK_PASSWORD the passwords.
# Runs on every `docker compose up` (both steps are idempotent), and on a host by the integration tests.
set -euo pipefail

: "${AIRFLOW_ADMIN_PASSWORD:?AIRFLOW_ADMIN_PASSWORD must be set (the password of the Airflow user admin)}"
: "${AIRFLOW_FEEDBACK_PASSWORD:?AIRFLOW_FEEDBACK_PASSWORD must be set (the password of the Airflow user lifeboat-feedback)}"
: "${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE:?AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE must be set}"

echo "lifeboat: airflow $(airflow version)"
airflow db migrate

pools=$(mktemp)
trap 'rm -f "$pools"' EXIT
python -m lifeboat.orchestration.pools "$pools"
airflow pools import "$pools"

python - <<'PY'
"""Set the passwords of admin and lifeboat-feedback in the SimpleAuthManager passwords file (other users'
entries are kept)."""
import json
import os
import tempfile
from pathlib import Path

path = Path(os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
path.parent.mkdir(parents=True, exist_ok=True)
passwords = json.loads(path.read_text() or "{}") if path.exists() else {}
passwords["admin"] = os.environ["AIRFLOW_ADMIN_PASSWORD"]
passwords["lifeboat-feedback"] = os.environ["AIRFLOW_FEEDBACK_PASSWORD"]
fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".passwords-")
with os.fdopen(fd, "w") as stream:
    json.dump(passwords, stream)
    stream.write("\n")
os.chmod(tmp, 0o600)
os.replace(tmp, path)
print(f"lifeboat: password of the Airflow user admin written to {path}")
print(f"lifeboat: password of the Airflow user lifeboat-feedback written to {path}")
PY
