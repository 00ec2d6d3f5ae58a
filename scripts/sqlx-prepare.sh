#!/usr/bin/env bash
# Refreshes (or, with --check, checks) the query data each store crate
# keeps in .sqlx/, against a scratch database made by its own migrations.
# Needs sqlx-cli (`cargo install sqlx-cli --version 0.8.6 --locked
# --no-default-features --features rustls,postgres,sqlite`) and, for the
# PostgreSQL crate, a server at AMI_PREPARE_POSTGRES (default
# postgres://postgres@127.0.0.1:5432).
set -euo pipefail
cd "$(dirname "$0")/.."
check=""
[ "${1:-}" = "--check" ] && check="--check"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

(cd crates/ami-store-sqlite \
  && export DATABASE_URL="sqlite:$scratch/prepare.db?mode=rwc" \
  && cargo sqlx migrate run --source migrations >/dev/null \
  && SQLX_OFFLINE=false cargo sqlx prepare $check)

server="${AMI_PREPARE_POSTGRES:-postgres://postgres@127.0.0.1:5432}"
db="ami_sqlx_prepare_$$"
psql "$server/postgres" -qc "create database $db"
trap 'rm -rf "$scratch"; psql "$server/postgres" -qc "drop database if exists $db"' EXIT
(cd crates/ami-store-postgres \
  && export DATABASE_URL="$server/$db" \
  && cargo sqlx migrate run --source migrations >/dev/null \
  && SQLX_OFFLINE=false cargo sqlx prepare $check)
