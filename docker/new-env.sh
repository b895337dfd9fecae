#!/usr/bin/env bash
# Fill every empty `KEY=` line of an env file (default: .env) with a fresh random secret; values already set
# are kept, so running it again changes nothing. Usage (beside docker-compose.yml):
#
#   cp .env.example .env && bash docker/new-env.sh .env
#
# Keys ending in FERNET_KEY get a Fernet key (32 random bytes, url-safe base64); every other one 32 random
# bytes as 64 hex digits (safe inside connection URLs). The file is rewritten with mode 600.
# Needs openssl (or python3).
set -euo pipefail

file="${1:-.env}"
if [ ! -f "$file" ]; then
    echo "error: $file does not exist (copy .env.example to it first)" >&2
    exit 1
fi
# 32 random bytes: as 64 hex digits, or url-safe base64 (a Fernet key). openssl, else Python's secrets module.
random_hex() {
    if command -v openssl >/dev/null 2>&1; then
        openssl rand -hex 32
    else
        python3 -c 'import secrets; print(secrets.token_hex(32))'
    fi
}
random_fernet_key() {
    if command -v openssl >/dev/null 2>&1; then
        openssl rand -base64 32 | tr '+/' '-_'
    else
        python3 -c 'import base64, secrets; print(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())'
    fi
}
if ! command -v openssl >/dev/null 2>&1 && ! command -v python3 >/dev/null 2>&1; then
    echo "error: openssl or python3 is needed to generate the secrets" >&2
    exit 1
fi

tmp="$(mktemp "${file}.XXXXXX")"
trap 'rm -f "$tmp"' EXIT
filled=0
while IFS= read -r line || [ -n "$line" ]; do
    if [[ "$line" =~ ^([A-Za-z_][A-Za-z0-9_]*)=$ ]]; then
        name="${BASH_REMATCH[1]}"
        if [[ "$name" == *FERNET_KEY ]]; then
            value="$(random_fernet_key)"
        else
            value="$(random_hex)"
        fi
        printf '%s=%s\n' "$name" "$value"
        filled=$((filled + 1))
    else
        printf '%s\n' "$line"
    fi
done <"$file" >"$tmp"
chmod 600 "$tmp"
mv "$tmp" "$file"
trap - EXIT
echo "filled ${filled} empty value(s) of ${file} with new secrets" >&2
