// The statements every Store implementation runs, written once over the two SQL dialects, so
// SqliteStore and PostgresStore cannot drift apart in what they read, write or how they order it.
// The text is portable SQL (docs/store.md); a dialect changes only four things:
//   - placeholders: `?` for SQLite, `$1, $2, ...` for PostgreSQL;
//   - text ordering: PostgreSQL compares text with `COLLATE "C"` (bytes, as SQLite's BINARY),
//     so orders and pages are the same whatever the database's default collation;
//   - rows that must not change until COMMIT are read `FOR UPDATE` on PostgreSQL (SQLite's
//     BEGIN IMMEDIATE already holds the only write lock);
//   - a row's labels are read as one JSON object, built by the aggregate each dialect has for
//     it: json_group_object (SQLite) or json_object_agg (PostgreSQL). One row per workflow,
//     however many labels it has, and no second query.
// Thread-safety: StatementsFor returns an immutable object built once; the functions are pure.
#ifndef KILN_STORE_INTERNAL_STATEMENTS_H_
#define KILN_STORE_INTERNAL_STATEMENTS_H_

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "base/error.h"
#include "store/records.h"
#include "store/store.h"

namespace kiln::store::internal {

enum class Dialect { kSqlite, kPostgres };

// Column lists, in the order the Read* functions of store/internal/record_reader.h consume
// them. The statements that read workflows and templates select one more column after these:
// the row's labels, as a JSON object (NULL or "{}" when it has none).
inline constexpr std::string_view kWorkflowColumns =
    "uid, name, namespace, kind, spec, parameters_json, phase, message, created_at, started_at, "
    "finished_at";
inline constexpr std::string_view kNodeColumns =
    "workflow_uid, id, parent_id, display_name, template_name, type, phase, attempt, started_at, "
    "finished_at, exit_code, message, inputs_json, outputs_json";
inline constexpr std::string_view kParameterColumns = "workflow_uid, node_id, kind, name, value";
inline constexpr std::string_view kArtifactColumns =
    "workflow_uid, node_id, direction, name, uri, sha256, size";
inline constexpr std::string_view kEventColumns =
    "seq, workflow_uid, node_id, at, kind, from_phase, to_phase, message, data_json";
inline constexpr std::string_view kTemplateColumns =
    "namespace, name, kind, spec, uid, created_at, updated_at";

struct Statements {
  // Apply: parameters in the order of the columns above (seq first for events).
  std::string upsert_workflow;
  std::string upsert_node;
  std::string upsert_parameter;
  std::string upsert_artifact;
  std::string insert_event;
  std::string read_event_seq;   // no parameters; one row, one column
  std::string write_event_seq;  // (value)
  // Store::ChangeCount: one more at the end of every Apply and DeleteWorkflow; no parameters.
  std::string count_change;
  std::string read_changes;  // one row, one column
  std::string count_by_phase;  // rows (phase, count)
  // Labels: (uid) and (uid, key, value); (kind, namespace, name) and (kind, namespace, name,
  // key, value). Used through WorkflowLabelWrites and TemplateWrites below.
  std::string delete_workflow_labels;
  std::string insert_workflow_label;
  std::string upsert_template;  // parameters in the order of kTemplateColumns
  std::string delete_template_labels;
  std::string insert_template_label;

  // Queries. Parameters: (uid); (namespace, name); (uid, after_seq, limit) for events.
  std::string get_workflow;
  std::string find_workflow;
  std::string list_nodes;
  std::string list_parameters;
  std::string list_artifacts;
  std::string list_events;

  // DeleteWorkflow: whether it exists (uid), then DeleteWorkflowWrites.
  std::string workflow_exists;
  // Children first: the foreign keys refuse a workflow that still has rows. Each (uid).
  std::array<std::string, 6> delete_workflow;
  // Batch::node_deletes: a node's artifacts, parameters, then its row. Each (uid, node id).
  std::array<std::string, 3> delete_node;

  // Templates, each (kind, namespace, name); lists come from ListTemplatesQuery and writes from
  // TemplateWrites and DeleteTemplateWrites.
  std::string get_template;
  std::string list_templates;                    // (kind, namespace)
  std::string list_templates_in_all_namespaces;  // (kind)
  std::string template_exists;
  std::array<std::string, 2> delete_template;  // labels first

  // Migrations: (version, applied_at); the newest version (NULL when none).
  std::string insert_migration;
  std::string schema_version;
};

// The statements in `dialect`; built on first use, never freed.
const Statements& StatementsFor(Dialect dialect);

// A parameter of a statement: text or an integer.
using Param = std::variant<std::string, int64_t>;

// A statement with its parameters, left to right.
struct Query {
  std::string sql;
  std::vector<Param> params;
  // Whether the statement is worth preparing once and keeping: false for those whose text
  // varies with the input (one per label selector's shape), which would fill the caches.
  bool reusable = true;
};

// ListWorkflows' statement for `filter`: its continue token decoded, its label selector
// evaluated with one EXISTS or NOT EXISTS per requirement, and one row more than filter.limit
// (PageOf uses it to tell whether another page follows). Values are bound, never written into
// the SQL. Errors: kInvalidArgument for a bad continue token or label selector.
Result<Query> ListWorkflowsQuery(Dialect dialect, const WorkflowFilter& filter);

// What replaces the labels of workflow `w`, in order, inside Apply's transaction: a delete of
// the old set, then an insert per label.
std::vector<Query> WorkflowLabelWrites(Dialect dialect, const WorkflowRecord& w);

// What PutTemplate runs, in order, in one transaction: the upsert of the template's row
// (keeping a stored created_at), then the replacement of its labels.
std::vector<Query> TemplateWrites(Dialect dialect, const TemplateRecord& t);

// ListTemplates' statement: by name in one namespace, or, for a WorkflowTemplate in namespace
// "", by name and then namespace in all of them.
Query ListTemplatesQuery(Dialect dialect, const std::string& kind, const std::string& namespace_);

// The deletes of DeleteWorkflow and DeleteTemplate, in order, once the row is known to exist.
std::vector<Query> DeleteWorkflowWrites(Dialect dialect, const std::string& uid);
// The statements that remove node `key` with its parameters and artifacts (Batch::node_deletes).
std::vector<Query> DeleteNodeWrites(Dialect dialect, const NodeKey& key);

std::vector<Query> DeleteTemplateWrites(Dialect dialect, const std::string& kind,
                                        const std::string& namespace_, const std::string& name);

// `sql` with each `?` replaced by `$1`, `$2`, ... (PostgreSQL's placeholders). The statements
// above have no `?` inside literals; quoted text is left alone anyway.
std::string NumberPlaceholders(std::string_view sql);

}  // namespace kiln::store::internal

#endif  // KILN_STORE_INTERNAL_STATEMENTS_H_
