#!/usr/bin/env bash
# Regenerates Sources/Storage/EmbeddedSQL.swift from Sources/Storage/SQL/*.sql and migrations/*.sql, the SQL
# compiled into muwad. Run it after editing any .sql file; EmbeddedSQLTests fails while it is stale.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build --product EmbedSQLTool >/dev/null
"$(swift build --show-bin-path)/EmbedSQLTool" Sources/Storage/EmbeddedSQL.swift Sources/Storage/SQL migrations
echo "embed-sql: wrote Sources/Storage/EmbeddedSQL.swift"
