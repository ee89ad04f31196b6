#include "store/internal/statements.h"

#include <utility>

namespace kiln::store::internal {

namespace {

// `column` as an ORDER BY or comparison term on text.
std::string Text(Dialect dialect, std::string_view column) {
  std::string term(column);
  if (dialect == Dialect::kPostgres) term += " COLLATE \"C\"";
  return term;
}

std::string Finish(Dialect dialect, std::string sql) {
  return dialect == Dialect::kPostgres ? NumberPlaceholders(sql) : sql;
}

Statements Build(Dialect d) {
  const std::string workflow_columns(kWorkflowColumns);
  Statements s;
  s.upsert_workflow =
      "INSERT INTO workflows (" + workflow_columns +
      ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
      "ON CONFLICT (uid) DO UPDATE SET name = excluded.name, namespace = excluded.namespace, "
      "kind = excluded.kind, spec = excluded.spec, parameters_json = excluded.parameters_json, "
      "phase = excluded.phase, message = excluded.message, created_at = excluded.created_at, "
      "started_at = excluded.started_at, finished_at = excluded.finished_at";
  s.upsert_node = "INSERT INTO nodes (" + std::string(kNodeColumns) +
                  ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                  "ON CONFLICT (workflow_uid, id) DO UPDATE SET parent_id = excluded.parent_id, "
                  "display_name = excluded.display_name, template_name = excluded.template_name, "
                  "type = excluded.type, phase = excluded.phase, attempt = excluded.attempt, "
                  "started_at = excluded.started_at, finished_at = excluded.finished_at, "
                  "exit_code = excluded.exit_code, message = excluded.message, "
                  "inputs_json = excluded.inputs_json, outputs_json = excluded.outputs_json";
  s.upsert_parameter = "INSERT INTO parameters (" + std::string(kParameterColumns) +
                       ") VALUES (?, ?, ?, ?, ?) "
                       "ON CONFLICT (workflow_uid, node_id, kind, name) DO UPDATE SET "
                       "value = excluded.value";
  s.upsert_artifact = "INSERT INTO artifacts (" + std::string(kArtifactColumns) +
                      ") VALUES (?, ?, ?, ?, ?, ?, ?) "
                      "ON CONFLICT (workflow_uid, node_id, direction, name) DO UPDATE SET "
                      "uri = excluded.uri, sha256 = excluded.sha256, size = excluded.size";
  s.insert_event =
      "INSERT INTO events (" + std::string(kEventColumns) + ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)";
  // FOR UPDATE: concurrent transactions take seqs one after the other, in commit order.
  s.read_event_seq = "SELECT value FROM kiln_counters WHERE name = 'event_seq'";
  if (d == Dialect::kPostgres) s.read_event_seq += " FOR UPDATE";
  s.write_event_seq = "UPDATE kiln_counters SET value = ? WHERE name = 'event_seq'";

  s.get_workflow = "SELECT " + workflow_columns + " FROM workflows WHERE uid = ?";
  s.find_workflow =
      "SELECT " + workflow_columns + " FROM workflows WHERE namespace = ? AND name = ?";
  s.list_nodes = "SELECT " + std::string(kNodeColumns) +
                 " FROM nodes WHERE workflow_uid = ? ORDER BY " + Text(d, "id");
  s.list_parameters = "SELECT " + std::string(kParameterColumns) +
                      " FROM parameters WHERE workflow_uid = ? ORDER BY " + Text(d, "node_id") +
                      ", " + Text(d, "kind") + ", " + Text(d, "name");
  s.list_artifacts = "SELECT " + std::string(kArtifactColumns) +
                     " FROM artifacts WHERE workflow_uid = ? ORDER BY " + Text(d, "node_id") +
                     ", " + Text(d, "direction") + ", " + Text(d, "name");
  s.list_events = "SELECT " + std::string(kEventColumns) +
                  " FROM events WHERE workflow_uid = ? AND seq > ? ORDER BY seq LIMIT ?";

  s.workflow_exists = "SELECT uid FROM workflows WHERE uid = ?";
  if (d == Dialect::kPostgres) s.workflow_exists += " FOR UPDATE";
  s.delete_workflow = {
      "DELETE FROM events WHERE workflow_uid = ?",
      "DELETE FROM artifacts WHERE workflow_uid = ?",
      "DELETE FROM parameters WHERE workflow_uid = ?",
      "DELETE FROM nodes WHERE workflow_uid = ?",
      "DELETE FROM workflows WHERE uid = ?",
  };

  s.insert_migration = "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)";
  s.schema_version = "SELECT MAX(version) FROM schema_migrations";

  for (std::string* sql :
       {&s.upsert_workflow, &s.upsert_node, &s.upsert_parameter, &s.upsert_artifact,
        &s.insert_event, &s.read_event_seq, &s.write_event_seq, &s.get_workflow, &s.find_workflow,
        &s.list_nodes, &s.list_parameters, &s.list_artifacts, &s.list_events, &s.workflow_exists,
        &s.insert_migration, &s.schema_version}) {
    *sql = Finish(d, std::move(*sql));
  }
  for (std::string& sql : s.delete_workflow) sql = Finish(d, std::move(sql));
  return s;
}

}  // namespace

const Statements& StatementsFor(Dialect dialect) {
  static const Statements sqlite = Build(Dialect::kSqlite);
  static const Statements postgres = Build(Dialect::kPostgres);
  return dialect == Dialect::kPostgres ? postgres : sqlite;
}

std::string ListWorkflowsSql(Dialect dialect, bool by_namespace, bool by_phase, bool after_key,
                             bool limited) {
  std::string sql = "SELECT " + std::string(kWorkflowColumns) + " FROM workflows WHERE 1 = 1";
  if (by_namespace) sql += " AND namespace = ?";
  if (by_phase) sql += " AND phase = ?";
  if (after_key) {
    sql += " AND (created_at < ? OR (created_at = ? AND " + Text(dialect, "uid") + " < ?))";
  }
  sql += " ORDER BY created_at DESC, " + Text(dialect, "uid") + " DESC";
  if (limited) sql += " LIMIT ?";
  return Finish(dialect, std::move(sql));
}

std::string NumberPlaceholders(std::string_view sql) {
  std::string out;
  out.reserve(sql.size() + 16);
  int n = 0;
  char quote = 0;  // the quote character we are inside, or 0
  for (char c : sql) {
    if (quote != 0) {
      if (c == quote) quote = 0;
      out += c;
    } else if (c == '\'' || c == '"') {
      quote = c;
      out += c;
    } else if (c == '?') {
      out += '$' + std::to_string(++n);
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace kiln::store::internal
