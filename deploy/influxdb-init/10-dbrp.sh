#!/bin/bash
# Map the bucket to an InfluxQL database/retention policy so odopulse's InfluxQL queries work on 2.x.
set -e
bucket_id=$(influx bucket list --name "${DOCKER_INFLUXDB_INIT_BUCKET}" --hide-headers | cut -f1)
influx v1 dbrp create --db "${DOCKER_INFLUXDB_INIT_BUCKET}" --rp autogen --bucket-id "$bucket_id" --default
