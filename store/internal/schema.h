// The store's schema, as versioned migrations shared by every Store implementation.
// Portable SQL only: types and syntax that both SQLite (>= 3.24) and PostgreSQL (>= 9.5) accept
// (TEXT, BIGINT, INTEGER, PRIMARY KEY, REFERENCES, FOREIGN KEY, CREATE INDEX). Nothing here is
// SQLite-only; docs/store.md explains each table.
//
// Rules for changing it: never edit a migration that has shipped; append a new one with the
// next version. Each migration's statements run in one transaction together with the insert
// of its row into schema_migrations.
// Thread-safety: constants.
#ifndef KILN_STORE_INTERNAL_SCHEMA_H_
#define KILN_STORE_INTERNAL_SCHEMA_H_

#include <array>
#include <span>
#include <string_view>

namespace kiln::store::internal {

// Created before any migration runs; one row per applied migration.
inline constexpr std::string_view kCreateMigrationsTable =
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version INTEGER PRIMARY KEY,"
    " applied_at BIGINT NOT NULL)";

inline constexpr std::string_view kMigrationsTable = "schema_migrations";

// Name of the row in kiln_counters that holds the last event seq handed out. Event seqs come
// from this row rather than from an auto-increment column, so they never repeat after the
// newest events were deleted with their workflow, and the SQL stays portable.
inline constexpr std::string_view kEventSeqCounter = "event_seq";

struct Migration {
  int version;
  std::string_view description;
  std::span<const std::string_view> statements;
};

inline constexpr std::array<std::string_view, 12> kMigration1 = {
    "CREATE TABLE workflows ("
    " uid TEXT PRIMARY KEY,"
    " name TEXT NOT NULL,"
    " namespace TEXT NOT NULL,"
    " kind TEXT NOT NULL,"
    " spec TEXT NOT NULL,"
    " parameters_json TEXT NOT NULL,"
    " phase TEXT NOT NULL,"
    " message TEXT NOT NULL,"
    " created_at BIGINT NOT NULL,"
    " started_at BIGINT NOT NULL,"
    " finished_at BIGINT NOT NULL,"
    " UNIQUE (namespace, name))",
    "CREATE INDEX workflows_by_created ON workflows (created_at, uid)",
    "CREATE INDEX workflows_by_namespace ON workflows (namespace, created_at, uid)",

    "CREATE TABLE nodes ("
    " workflow_uid TEXT NOT NULL REFERENCES workflows (uid),"
    " id TEXT NOT NULL,"
    " parent_id TEXT NOT NULL,"
    " display_name TEXT NOT NULL,"
    " template_name TEXT NOT NULL,"
    " type TEXT NOT NULL,"
    " phase TEXT NOT NULL,"
    " attempt INTEGER NOT NULL,"
    " started_at BIGINT NOT NULL,"
    " finished_at BIGINT NOT NULL,"
    " exit_code INTEGER,"
    " message TEXT NOT NULL,"
    " inputs_json TEXT NOT NULL,"
    " outputs_json TEXT NOT NULL,"
    " PRIMARY KEY (workflow_uid, id))",

    "CREATE TABLE parameters ("
    " workflow_uid TEXT NOT NULL REFERENCES workflows (uid),"
    " node_id TEXT NOT NULL,"
    " kind TEXT NOT NULL,"
    " name TEXT NOT NULL,"
    " value TEXT NOT NULL,"
    " PRIMARY KEY (workflow_uid, node_id, kind, name))",

    "CREATE TABLE artifacts ("
    " workflow_uid TEXT NOT NULL REFERENCES workflows (uid),"
    " node_id TEXT NOT NULL,"
    " direction TEXT NOT NULL,"
    " name TEXT NOT NULL,"
    " uri TEXT NOT NULL,"
    " sha256 TEXT NOT NULL,"
    " size BIGINT NOT NULL,"
    " PRIMARY KEY (workflow_uid, node_id, direction, name))",

    // Append-only: rows are inserted by Apply and deleted only with their workflow.
    "CREATE TABLE events ("
    " seq BIGINT PRIMARY KEY,"
    " workflow_uid TEXT NOT NULL REFERENCES workflows (uid),"
    " node_id TEXT NOT NULL,"
    " at BIGINT NOT NULL,"
    " kind TEXT NOT NULL,"
    " from_phase TEXT NOT NULL,"
    " to_phase TEXT NOT NULL,"
    " message TEXT NOT NULL,"
    " data_json TEXT NOT NULL)",
    // Also makes the foreign-key check on deleting a workflow a lookup, not a scan (nodes,
    // parameters and artifacts lead with workflow_uid in their primary keys).
    "CREATE INDEX events_by_workflow ON events (workflow_uid, seq)",

    "CREATE TABLE kiln_counters ("
    " name TEXT PRIMARY KEY,"
    " value BIGINT NOT NULL)",
    "INSERT INTO kiln_counters (name, value) VALUES ('event_seq', 0)",

    // Workflow-level lookups by phase (kiln list --phase Running; resume after a restart).
    "CREATE INDEX workflows_by_phase ON workflows (phase, created_at, uid)",
    "CREATE INDEX nodes_by_phase ON nodes (workflow_uid, phase)",
};

// Labels of workflows, and WorkflowTemplates (namespaced) and ClusterWorkflowTemplates
// (namespace '') with their labels.
inline constexpr std::array<std::string_view, 4> kMigration2 = {
    // Replaced as a set whenever the workflow is upserted; deleted with the workflow.
    "CREATE TABLE workflow_labels ("
    " workflow_uid TEXT NOT NULL REFERENCES workflows (uid),"
    " key TEXT NOT NULL,"
    " value TEXT NOT NULL,"
    " PRIMARY KEY (workflow_uid, key))",
    // Label selectors check each listed workflow on the primary key; this index lets the
    // database start from the workflows that have a label instead, where that is fewer.
    "CREATE INDEX workflow_labels_by_key ON workflow_labels (key, value, workflow_uid)",

    "CREATE TABLE workflow_templates ("
    " kind TEXT NOT NULL,"
    " namespace TEXT NOT NULL,"
    " name TEXT NOT NULL,"
    " spec TEXT NOT NULL,"
    " uid TEXT NOT NULL,"
    " created_at BIGINT NOT NULL,"
    " updated_at BIGINT NOT NULL,"
    " PRIMARY KEY (kind, namespace, name))",
    "CREATE TABLE workflow_template_labels ("
    " kind TEXT NOT NULL,"
    " namespace TEXT NOT NULL,"
    " name TEXT NOT NULL,"
    " key TEXT NOT NULL,"
    " value TEXT NOT NULL,"
    " PRIMARY KEY (kind, namespace, name, key),"
    " FOREIGN KEY (kind, namespace, name) REFERENCES workflow_templates (kind, namespace, name))",
};

// A counter of committed changes to workflows (Store::ChangeCount), so that readers can keep
// what they derived from the rows until something changes.
inline constexpr std::array<std::string_view, 1> kMigration3 = {
    "INSERT INTO kiln_counters (name, value) VALUES ('changes', 0)",
};

inline constexpr std::array<Migration, 3> kMigrations = {
    Migration{1, "workflows, nodes, parameters, artifacts, events", kMigration1},
    Migration{2, "workflow labels, workflow templates", kMigration2},
    Migration{3, "a counter of changes to workflows", kMigration3},
};

// The newest schema version this binary knows.
inline constexpr int kLatestSchemaVersion = kMigrations.back().version;

}  // namespace kiln::store::internal

#endif  // KILN_STORE_INTERNAL_SCHEMA_H_
