// The statements every Store implementation runs, written once over the two SQL dialects, so
// SqliteStore and PostgresStore cannot drift apart in what they read, write or how they order it.
// The text is portable SQL (docs/store.md); a dialect changes only three things:
//   - placeholders: `?` for SQLite, `$1, $2, ...` for PostgreSQL;
//   - text ordering: PostgreSQL compares text with `COLLATE "C"` (bytes, as SQLite's BINARY),
//     so orders and pages are the same whatever the database's default collation;
//   - the event counter is read `FOR UPDATE` on PostgreSQL (SQLite's BEGIN IMMEDIATE already
//     holds the only write lock).
// Thread-safety: StatementsFor returns an immutable object built once; the functions are pure.
#ifndef KILN_STORE_INTERNAL_STATEMENTS_H_
#define KILN_STORE_INTERNAL_STATEMENTS_H_

#include <array>
#include <string>
#include <string_view>

namespace kiln::store::internal {

enum class Dialect { kSqlite, kPostgres };

// Column lists, in the order the Read* functions of each store consume them.
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

struct Statements {
  // Apply: parameters in the order of the columns above (seq first for events).
  std::string upsert_workflow;
  std::string upsert_node;
  std::string upsert_parameter;
  std::string upsert_artifact;
  std::string insert_event;
  std::string read_event_seq;   // no parameters; one row, one column
  std::string write_event_seq;  // (value)

  // Queries. Parameters: (uid); (namespace, name); (uid, after_seq, limit) for events.
  std::string get_workflow;
  std::string find_workflow;
  std::string list_nodes;
  std::string list_parameters;
  std::string list_artifacts;
  std::string list_events;

  // DeleteWorkflow: whether it exists (uid), then the deletes, children first, each (uid).
  std::string workflow_exists;
  std::array<std::string, 5> delete_workflow;

  // Migrations: (version, applied_at); the newest version (NULL when none).
  std::string insert_migration;
  std::string schema_version;
};

// The statements in `dialect`; built on first use, never freed.
const Statements& StatementsFor(Dialect dialect);

// ListWorkflows' query for the filters in use. Parameters, in order: namespace (when
// by_namespace), phase (when by_phase), created_at, created_at, uid (when after a page key),
// limit (when limited).
std::string ListWorkflowsSql(Dialect dialect, bool by_namespace, bool by_phase, bool after_key,
                             bool limited);

// `sql` with each `?` replaced by `$1`, `$2`, ... (PostgreSQL's placeholders). The statements
// above have no `?` inside literals; quoted text is left alone anyway.
std::string NumberPlaceholders(std::string_view sql);

}  // namespace kiln::store::internal

#endif  // KILN_STORE_INTERNAL_STATEMENTS_H_
