#include "store/internal/statements.h"

#include <optional>
#include <utility>

#include "store/internal/continue_token.h"
#include "store/label_selector.h"

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

// A scalar subquery: the labels in `table` of the row `where` names, as one JSON object.
std::string LabelsJson(Dialect dialect, std::string_view table, std::string_view where) {
  std::string aggregate = dialect == Dialect::kPostgres ? "json_object_agg(key, value)"
                                                        : "json_group_object(key, value)";
  return "(SELECT " + aggregate + " FROM " + std::string(table) + " WHERE " + std::string(where) +
         ")";
}

// "SELECT <columns>, <labels> FROM workflows", to be followed by a WHERE clause.
std::string SelectWorkflows(Dialect dialect) {
  return "SELECT " + std::string(kWorkflowColumns) + ", " +
         LabelsJson(dialect, "workflow_labels", "workflow_uid = workflows.uid") + " FROM workflows";
}

std::string SelectTemplates(Dialect dialect) {
  return "SELECT " + std::string(kTemplateColumns) + ", " +
         LabelsJson(dialect, "workflow_template_labels",
                    "kind = workflow_templates.kind AND namespace = workflow_templates.namespace "
                    "AND name = workflow_templates.name") +
         " FROM workflow_templates";
}

constexpr std::string_view kTemplateKeyWhere = "kind = ? AND namespace = ? AND name = ?";

// Appends the replacement of a row's labels: `delete_all` (owner), then `insert` (owner, key,
// value) per label.
void AppendLabelWrites(const std::string& delete_all, const std::string& insert_one,
                       const std::vector<Param>& owner,
                       const std::map<std::string, std::string>& labels,
                       std::vector<Query>& writes) {
  writes.push_back({delete_all, owner});
  for (const auto& [key, value] : labels) {
    Query insert{insert_one, owner};
    insert.params.emplace_back(key);
    insert.params.emplace_back(value);
    writes.push_back(std::move(insert));
  }
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
  s.count_change = "UPDATE kiln_counters SET value = value + 1 WHERE name = 'changes'";
  s.read_changes = "SELECT value FROM kiln_counters WHERE name = 'changes'";
  s.count_by_phase = "SELECT phase, COUNT(*) FROM workflows GROUP BY phase";
  s.delete_workflow_labels = "DELETE FROM workflow_labels WHERE workflow_uid = ?";
  s.insert_workflow_label =
      "INSERT INTO workflow_labels (workflow_uid, key, value) VALUES (?, ?, ?)";
  // created_at is not updated: a replaced template keeps the time it was first stored, as a
  // Kubernetes object keeps its creationTimestamp.
  s.upsert_template = "INSERT INTO workflow_templates (" + std::string(kTemplateColumns) +
                      ") VALUES (?, ?, ?, ?, ?, ?, ?) "
                      "ON CONFLICT (kind, namespace, name) DO UPDATE SET spec = excluded.spec, "
                      "uid = excluded.uid, updated_at = excluded.updated_at";
  s.delete_template_labels =
      "DELETE FROM workflow_template_labels WHERE " + std::string(kTemplateKeyWhere);
  s.insert_template_label =
      "INSERT INTO workflow_template_labels (kind, namespace, name, key, value) "
      "VALUES (?, ?, ?, ?, ?)";

  s.get_workflow = SelectWorkflows(d) + " WHERE uid = ?";
  s.find_workflow = SelectWorkflows(d) + " WHERE namespace = ? AND name = ?";
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
      s.delete_workflow_labels,
      "DELETE FROM workflows WHERE uid = ?",
  };

  s.delete_node = {
      "DELETE FROM artifacts WHERE workflow_uid = ? AND node_id = ?",
      "DELETE FROM parameters WHERE workflow_uid = ? AND node_id = ?",
      "DELETE FROM nodes WHERE workflow_uid = ? AND id = ?",
  };

  const std::string template_key(kTemplateKeyWhere);
  s.get_template = SelectTemplates(d) + " WHERE " + template_key;
  s.list_templates =
      SelectTemplates(d) + " WHERE kind = ? AND namespace = ? ORDER BY " + Text(d, "name");
  s.list_templates_in_all_namespaces = SelectTemplates(d) + " WHERE kind = ? ORDER BY " +
                                       Text(d, "name") + ", " + Text(d, "namespace");
  s.template_exists = "SELECT name FROM workflow_templates WHERE " + template_key;
  if (d == Dialect::kPostgres) s.template_exists += " FOR UPDATE";
  s.delete_template = {
      s.delete_template_labels,
      "DELETE FROM workflow_templates WHERE " + template_key,
  };

  s.insert_migration = "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)";
  s.schema_version = "SELECT MAX(version) FROM schema_migrations";

  for (std::string* sql : {&s.upsert_workflow,
                           &s.upsert_node,
                           &s.upsert_parameter,
                           &s.upsert_artifact,
                           &s.insert_event,
                           &s.read_event_seq,
                           &s.write_event_seq,
                           &s.count_change,
                           &s.read_changes,
                           &s.count_by_phase,
                           &s.delete_workflow_labels,
                           &s.insert_workflow_label,
                           &s.upsert_template,
                           &s.delete_template_labels,
                           &s.insert_template_label,
                           &s.get_workflow,
                           &s.find_workflow,
                           &s.list_nodes,
                           &s.list_parameters,
                           &s.list_artifacts,
                           &s.list_events,
                           &s.workflow_exists,
                           &s.get_template,
                           &s.list_templates,
                           &s.list_templates_in_all_namespaces,
                           &s.template_exists,
                           &s.insert_migration,
                           &s.schema_version}) {
    *sql = Finish(d, std::move(*sql));
  }
  for (std::string& sql : s.delete_workflow) sql = Finish(d, std::move(sql));
  for (std::string& sql : s.delete_template) sql = Finish(d, std::move(sql));
  for (std::string& sql : s.delete_node) sql = Finish(d, std::move(sql));
  return s;
}

}  // namespace

const Statements& StatementsFor(Dialect dialect) {
  static const Statements sqlite = Build(Dialect::kSqlite);
  static const Statements postgres = Build(Dialect::kPostgres);
  return dialect == Dialect::kPostgres ? postgres : sqlite;
}

Result<Query> ListWorkflowsQuery(Dialect dialect, const WorkflowFilter& filter) {
  std::optional<PageKey> after;
  if (!filter.continue_token.empty()) {
    auto key = DecodeContinueToken(filter.continue_token);
    if (!key) return std::unexpected(key.error());
    after = std::move(*key);
  }
  auto requirements = ParseLabelSelector(filter.label_selector);
  if (!requirements) return std::unexpected(requirements.error());

  Query q;
  q.reusable = requirements->empty();
  q.sql = SelectWorkflows(dialect) + " WHERE 1 = 1";
  if (!filter.namespace_.empty()) {
    q.sql += " AND namespace = ?";
    q.params.emplace_back(filter.namespace_);
  }
  if (!filter.phase.empty()) {
    q.sql += " AND phase = ?";
    q.params.emplace_back(filter.phase);
  }
  // One subquery per requirement, on the label table's primary key (workflow_uid, key): the
  // rows stay in (created_at, uid) order, so keyset pagination works as without a selector.
  for (const LabelRequirement& r : *requirements) {
    q.sql += r.negated() ? " AND NOT EXISTS" : " AND EXISTS";
    q.sql +=
        " (SELECT 1 FROM workflow_labels AS l WHERE l.workflow_uid = workflows.uid AND "
        "l.key = ?";
    q.params.emplace_back(r.key);
    if (!r.values.empty()) {
      q.sql += " AND l.value IN (";
      for (size_t i = 0; i < r.values.size(); ++i) {
        q.sql += i == 0 ? "?" : ", ?";
        q.params.emplace_back(r.values[i]);
      }
      q.sql += ")";
    }
    q.sql += ")";
  }
  if (after) {
    q.sql += " AND (created_at < ? OR (created_at = ? AND " + Text(dialect, "uid") + " < ?))";
    q.params.insert(q.params.end(), {after->created_at, after->created_at, after->uid});
  }
  q.sql += " ORDER BY created_at DESC, " + Text(dialect, "uid") + " DESC";
  if (filter.limit > 0) {
    q.sql += " LIMIT ?";
    q.params.emplace_back(int64_t{filter.limit} + 1);
  }
  q.sql = Finish(dialect, std::move(q.sql));
  return q;
}

std::vector<Query> WorkflowLabelWrites(Dialect dialect, const WorkflowRecord& w) {
  const Statements& s = StatementsFor(dialect);
  std::vector<Query> writes;
  AppendLabelWrites(s.delete_workflow_labels, s.insert_workflow_label, {w.uid}, w.labels, writes);
  return writes;
}

std::vector<Query> TemplateWrites(Dialect dialect, const TemplateRecord& t) {
  const Statements& s = StatementsFor(dialect);
  std::vector<Query> writes;
  writes.push_back({s.upsert_template,
                    {t.namespace_, t.name, t.kind, t.spec, t.uid, t.created_at, t.updated_at}});
  AppendLabelWrites(s.delete_template_labels, s.insert_template_label,
                    {t.kind, t.namespace_, t.name}, t.labels, writes);
  return writes;
}

Query ListTemplatesQuery(Dialect dialect, const std::string& kind, const std::string& namespace_) {
  const Statements& s = StatementsFor(dialect);
  if (namespace_.empty() && kind == kWorkflowTemplate) {
    return {s.list_templates_in_all_namespaces, {kind}};
  }
  return {s.list_templates, {kind, namespace_}};
}

std::vector<Query> DeleteWorkflowWrites(Dialect dialect, const std::string& uid) {
  std::vector<Query> writes;
  for (const std::string& sql : StatementsFor(dialect).delete_workflow) {
    writes.push_back({sql, {uid}});
  }
  writes.push_back({StatementsFor(dialect).count_change, {}});
  return writes;
}

std::vector<Query> DeleteNodeWrites(Dialect dialect, const NodeKey& key) {
  std::vector<Query> writes;
  for (const std::string& sql : StatementsFor(dialect).delete_node) {
    writes.push_back({sql, {key.workflow_uid, key.id}});
  }
  return writes;
}

std::vector<Query> DeleteTemplateWrites(Dialect dialect, const std::string& kind,
                                        const std::string& namespace_, const std::string& name) {
  std::vector<Query> writes;
  for (const std::string& sql : StatementsFor(dialect).delete_template) {
    writes.push_back({sql, {kind, namespace_, name}});
  }
  return writes;
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
