#!/usr/bin/env bash
# Create (or update) the roles and databases of Airflow and MLflow. Idempotent: a role that exists gets its
# password set again, a database that exists is kept (its owner and privileges are re-applied).
#
# In the postgres container it runs once, on the first start, from /docker-entrypoint-initdb.d (through the
# server's socket, as POSTGRES_USER). Run it again after changing a password or a name:
#   docker compose exec postgres bash /docker-entrypoint-initdb.d/10-lifeboat-databases.sh
# On a host (the integration tests), point it at a server with libpq's variables:
#   PGHOST=127.0.0.1 PGPORT=5432 AIRFLOW_DB_PASSWORD=... MLFLOW_DB_PASSWORD=... bash docker/postgres/init-databases.sh
#
# Variables: AIRFLOW_DB_PASSWORD, MLFLOW_DB_PASSWORD (required); AIRFLOW_DB_NAME/AIRFLOW_DB_USER (airflow),
# MLFLOW_DB_NAME/MLFLOW_DB_USER (mlflow); LIFEBOAT_PG_ADMIN_USER (POSTGRES_USER, else postgres) and
# LIFEBOAT_PG_ADMIN_DB (postgres): who runs the statements, where; PGHOST, PGPORT, PGPASSWORD as libpq reads
# them. Needs psql 15+ (\getenv). Secrets reach psql through the environment, never the command line.
set -euo pipefail

admin_user="${LIFEBOAT_PG_ADMIN_USER:-${POSTGRES_USER:-postgres}}"
admin_db="${LIFEBOAT_PG_ADMIN_DB:-postgres}"

# One role + one database owned by it. Arguments: role, database, password.
lifeboat_create_database() {
    LIFEBOAT_PG_ROLE="$1" LIFEBOAT_PG_DATABASE="$2" LIFEBOAT_PG_PASSWORD="$3" \
        psql --no-psqlrc --no-password --quiet -v ON_ERROR_STOP=1 \
        --username "$admin_user" --dbname "$admin_db" <<'SQL'
\getenv lb_role LIFEBOAT_PG_ROLE
\getenv lb_database LIFEBOAT_PG_DATABASE
\getenv lb_password LIFEBOAT_PG_PASSWORD
SELECT format('CREATE ROLE %I LOGIN', :'lb_role')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'lb_role') \gexec
SELECT format('ALTER ROLE %I WITH LOGIN PASSWORD %L', :'lb_role', :'lb_password') \gexec
SELECT format('CREATE DATABASE %I OWNER %I ENCODING %L', :'lb_database', :'lb_role', 'UTF8')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'lb_database') \gexec
SELECT format('ALTER DATABASE %I OWNER TO %I', :'lb_database', :'lb_role') \gexec
SELECT format('GRANT ALL PRIVILEGES ON DATABASE %I TO %I', :'lb_database', :'lb_role') \gexec
SQL
    echo "lifeboat: database \"$2\" owned by role \"$1\" is ready"
}

lifeboat_create_database "${AIRFLOW_DB_USER:-airflow}" "${AIRFLOW_DB_NAME:-airflow}" \
    "${AIRFLOW_DB_PASSWORD:?AIRFLOW_DB_PASSWORD must be set (the password of the Airflow database role)}"
lifeboat_create_database "${MLFLOW_DB_USER:-mlflow}" "${MLFLOW_DB_NAME:-mlflow}" \
    "${MLFLOW_DB_PASSWORD:?MLFLOW_DB_PASSWORD must be set (the password of the MLflow database role)}"
