// The store: where kiln keeps workflows, their nodes, parameters, artifacts and the event log.
// `Store` is the interface the scheduler and the API use; SqliteStore (store/sqlite_store.h) is
// the embedded implementation, PostgresStore (store/postgres_store.h) the one on a server; both
// keep the same contract (docs/store.md) and pass the same tests (tests/store/store_test.cc).
//
// Durability contract: when Apply() returns success, the whole batch is on stable storage and
// survives a kill -9 of the process (and, with the default settings, a power loss). The
// scheduler persists a transition with Apply() before it performs the transition's actions.
//
// Thread-safety: every implementation is safe to call from several threads at once (SQLite
// serializes the calls; PostgreSQL runs them on a pool of connections).
#ifndef KILN_STORE_STORE_H_
#define KILN_STORE_STORE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "store/records.h"

namespace kiln::store {

// A node's key: (workflow_uid, id).
struct NodeKey {
  std::string workflow_uid;
  std::string id;
  bool operator==(const NodeKey&) const = default;
};

// Everything one transition changes. Applied in one transaction: all of it or none of it.
// Rows are applied in this order: the workflow, node deletions, nodes, parameters, artifacts,
// events; so a batch may create a workflow and its first nodes together, and may remove a node
// and create it again.
struct Batch {
  // Inserted, or replaces the row with its uid; its labels replace the workflow's label set.
  std::optional<WorkflowRecord> workflow_upsert;
  // Nodes removed (a retried workflow's failed nodes), with their parameters and artifacts.
  // The event log keeps what happened to them. A key that has no row is not an error.
  std::vector<NodeKey> node_deletes;
  std::vector<NodeRecord> node_upserts;            // inserted, or replace (workflow_uid, id)
  std::vector<ParameterRecord> parameter_upserts;  // inserted, or replace their key's value
  // Inserted; recording the same (workflow_uid, node_id, direction, name) again replaces the
  // row, so a step that is re-recorded after a restart does not fail.
  std::vector<ArtifactRecord> artifact_inserts;
  std::vector<EventRecord> events;  // appended in order; the store assigns each a seq

  bool empty() const {
    return !workflow_upsert && node_deletes.empty() && node_upserts.empty() &&
           parameter_upserts.empty() &&
           artifact_inserts.empty() && events.empty();
  }
};

// Which workflows ListWorkflows returns. Empty strings match everything.
struct WorkflowFilter {
  std::string namespace_;
  std::string phase;
  // A Kubernetes label selector (store/label_selector.h): requirements separated by commas, all
  // of which a workflow's labels must meet: "k=v", "k==v", "k!=v", "k", "!k", "k in (a,b)",
  // "k notin (a,b)". "k!=v" and "notin" also match workflows without the label k.
  std::string label_selector;
  int limit = 0;               // at most this many per page; <= 0: all of them
  std::string continue_token;  // from the previous page; "" for the first page
};

// One page of workflows, newest first (created_at descending, then uid descending).
struct WorkflowPage {
  std::vector<WorkflowRecord> workflows;
  std::string continue_token;  // pass it in the next filter; "" when this was the last page
};

class Store {
 public:
  virtual ~Store() = default;

  // Applies every row of `batch` in one transaction. On error nothing of the batch is kept.
  // Errors: kInvalidArgument for an empty uid or node id, or a label with an empty key or with
  // text that is not UTF-8 or holds a NUL byte; kFailedPrecondition for a row whose workflow
  // does not exist; kAlreadyExists for a second workflow with the same namespace and name;
  // kUnavailable when the database is busy or the disk failed (worth retrying);
  // kResourceExhausted when the disk is full.
  virtual Result<void> Apply(const Batch& batch) = 0;

  // The workflow with `uid`, or nullopt when there is none.
  virtual Result<std::optional<WorkflowRecord>> GetWorkflow(const std::string& uid) = 0;
  // The workflow named `name` in `namespace_`, or nullopt when there is none.
  virtual Result<std::optional<WorkflowRecord>> FindWorkflow(const std::string& namespace_,
                                                             const std::string& name) = 0;
  // Workflows matching `filter`, newest first, one page at a time (keyset pagination on
  // (created_at, uid), so pages stay stable while workflows are added).
  // Errors: kInvalidArgument for a continue token this store did not produce, or a label
  // selector that does not parse (the message names the selector and the requirement).
  virtual Result<WorkflowPage> ListWorkflows(const WorkflowFilter& filter) = 0;

  // The rows of workflow `uid`; empty when it has none or does not exist.
  virtual Result<std::vector<NodeRecord>> ListNodes(const std::string& uid) = 0;  // by id
  // Ordered by (node_id, kind, name).
  virtual Result<std::vector<ParameterRecord>> ListParameters(const std::string& uid) = 0;
  // Ordered by (node_id, direction, name).
  virtual Result<std::vector<ArtifactRecord>> ListArtifacts(const std::string& uid) = 0;
  // Events of workflow `uid` with seq > after_seq, in seq order; at most `limit` (<= 0: all).
  virtual Result<std::vector<EventRecord>> ListEvents(const std::string& uid, int64_t after_seq,
                                                      int limit) = 0;

  // A number that grows with every Apply and DeleteWorkflow committed, by this process or any
  // other sharing the database: while it stays the same, no workflow row changed, so what a
  // reader derived from the rows (a rendered answer) is still true. Read it before the rows.
  virtual Result<int64_t> ChangeCount() = 0;

  // How many workflows the store holds, by phase (phases without any are left out).
  virtual Result<std::map<std::string, int64_t>> CountWorkflowsByPhase() = 0;

  // Removes workflow `uid` and all its rows, its events included, in one transaction.
  // Errors: kNotFound when there is no such workflow.
  virtual Result<void> DeleteWorkflow(const std::string& uid) = 0;

  // WorkflowTemplates and ClusterWorkflowTemplates, keyed by (kind, namespace_, name): `kind` is
  // kWorkflowTemplate, with a namespace, or kClusterWorkflowTemplate, with namespace "".
  // Errors of all four: kInvalidArgument for another kind, a WorkflowTemplate without a
  // namespace or a ClusterWorkflowTemplate with one; and the database errors of Apply.

  // Inserts `t`, or replaces the template with its key (spec, uid, updated_at and labels),
  // keeping the stored created_at. One transaction.
  // Errors: also kInvalidArgument for an empty name, or a label Apply would refuse.
  virtual Result<void> PutTemplate(const TemplateRecord& t) = 0;
  // The template with that key, or nullopt when there is none.
  virtual Result<std::optional<TemplateRecord>> GetTemplate(const std::string& kind,
                                                            const std::string& namespace_,
                                                            const std::string& name) = 0;
  // The templates of `kind` in `namespace_`, by name. For kWorkflowTemplate, namespace_ ""
  // means every namespace (ordered by name, then namespace).
  virtual Result<std::vector<TemplateRecord>> ListTemplates(const std::string& kind,
                                                            const std::string& namespace_) = 0;
  // Removes the template with that key, with its labels.
  // Errors: also kNotFound when there is no such template.
  virtual Result<void> DeleteTemplate(const std::string& kind, const std::string& namespace_,
                                      const std::string& name) = 0;
};

}  // namespace kiln::store

#endif  // KILN_STORE_STORE_H_
