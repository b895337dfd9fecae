#!/usr/bin/env bash
# Sourced by spark-submit and spark-class (Spark's load-spark-env.sh) when SPARK_CONF_DIR is this folder, as
# it is in the lifeboat image (Dockerfile.airflow).
#
# In a container the Spark driver (inside an Airflow task) and the workers advertise an address that the
# other containers must reach. Spark's default is the canonical name of the container's IP address, which
# depends on Docker's DNS answering container ids; with LIFEBOAT_SPARK_ADVERTISE_IP=true the container's IP
# address is advertised instead. An explicit SPARK_LOCAL_HOSTNAME always wins.
if [ "${LIFEBOAT_SPARK_ADVERTISE_IP:-}" = "true" ] && [ -z "${SPARK_LOCAL_HOSTNAME:-}" ]; then
    lifeboat_ip="$(hostname -i 2>/dev/null | awk '{print $1}')"
    if [ -n "$lifeboat_ip" ]; then
        export SPARK_LOCAL_HOSTNAME="$lifeboat_ip"
    fi
    unset lifeboat_ip
fi
