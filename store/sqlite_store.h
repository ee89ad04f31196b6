// SqliteStore: the embedded Store, one SQLite file in WAL mode (docs/store.md).
// Thread-safety: safe to call from several threads; one mutex serializes every call on the one
// connection. Several processes may open the same file: writes serialize on SQLite's lock
// (waiting up to busy_timeout_ms), and event seqs stay strictly increasing across them.
#ifndef KILN_STORE_SQLITE_STORE_H_
#define KILN_STORE_SQLITE_STORE_H_

#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/error.h"
#include "store/store.h"

struct sqlite3;
struct sqlite3_stmt;

namespace kiln::store {

namespace internal {
struct Query;  // store/internal/statements.h
}  // namespace internal

// How hard a commit works to reach stable storage.
enum class Durability {
  // synchronous=FULL: every commit fsyncs the WAL before Apply returns. Survives kill -9 and
  // power loss. The default: kiln performs a transition's actions (launching a pod) right after
  // Apply returns, so a commit lost on power failure would repeat or lose work.
  kFull,
  // synchronous=NORMAL: survives kill -9 (the commit is in the OS page cache) but the last
  // commits may be rolled back by a power loss or OS crash. For tests and throwaway stores.
  kNormal,
};

struct SqliteOptions {
  Durability durability = Durability::kFull;
  int busy_timeout_ms = 5000;     // how long a write waits for another process's lock
  bool create_if_missing = true;  // false: a missing file is kNotFound (kiln resume)
};

class SqliteStore final : public Store {
  struct Key;  // only Open can make one

 public:
  // Opens or creates the database at `path` and migrates its schema to the newest version.
  // Returns the store, which owns the connection.
  // Errors (each message names the path and what to do):
  //   kInvalidArgument: the parent directory is missing, is not a directory, or is not
  //     writable; `path` is a directory or is not writable.
  //   kNotFound: `path` does not exist and options.create_if_missing is false.
  //   kFailedPrecondition: the file is not a kiln database (not SQLite, corrupted, or another
  //     program's SQLite file), or its schema is newer than this binary. The file is left
  //     byte-for-byte as it was.
  //   kUnavailable: SQLite could not open or lock the file (busy, I/O error).
  // Never throws.
  static Result<std::unique_ptr<SqliteStore>> Open(const std::string& path,
                                                   const SqliteOptions& options = {});

  // Use Open(). (Public only so that Open can use std::make_unique; Key is private.)
  SqliteStore(const Key&, std::string path, sqlite3* db);
  ~SqliteStore() override;
  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

  Result<void> Apply(const Batch& batch) override;
  Result<std::optional<WorkflowRecord>> GetWorkflow(const std::string& uid) override;
  Result<std::optional<WorkflowRecord>> FindWorkflow(const std::string& namespace_,
                                                     const std::string& name) override;
  Result<WorkflowPage> ListWorkflows(const WorkflowFilter& filter) override;
  Result<std::vector<NodeRecord>> ListNodes(const std::string& uid) override;
  Result<std::vector<ParameterRecord>> ListParameters(const std::string& uid) override;
  Result<std::vector<ArtifactRecord>> ListArtifacts(const std::string& uid) override;
  Result<std::vector<EventRecord>> ListEvents(const std::string& uid, int64_t after_seq,
                                              int limit) override;
  Result<int64_t> ChangeCount() override;
  Result<std::map<std::string, int64_t>> CountWorkflowsByPhase() override;
  Result<void> DeleteWorkflow(const std::string& uid) override;
  Result<void> PutTemplate(const TemplateRecord& t) override;
  Result<std::optional<TemplateRecord>> GetTemplate(const std::string& kind,
                                                    const std::string& namespace_,
                                                    const std::string& name) override;
  Result<std::vector<TemplateRecord>> ListTemplates(const std::string& kind,
                                                    const std::string& namespace_) override;
  Result<void> DeleteTemplate(const std::string& kind, const std::string& namespace_,
                              const std::string& name) override;

  // The schema version of the open database (internal::kLatestSchemaVersion after Open).
  Result<int> SchemaVersion();

  const std::string& path() const { return path_; }

 private:
  struct StmtDeleter {
    void operator()(sqlite3_stmt* stmt) const;
  };
  using StmtPtr = std::unique_ptr<sqlite3_stmt, StmtDeleter>;

  class Stmt;

  // Pragmas, checks and migrations run once by Open. REQUIRES: mu_ not held.
  Result<void> Initialize(const SqliteOptions& options);
  // The prepared statement for `sql`, cached when `reusable`; reset and unbound (and finalized
  // when not cached) when the Stmt goes out of scope. REQUIRES: mu_ held.
  Result<Stmt> Prepare(std::string_view sql, bool reusable = true);
  // Runs the cached statement `sql` (no parameters; rows are ignored). REQUIRES: mu_ held.
  Result<void> Exec(std::string_view sql, std::string_view what);
  // Runs `sql` without caching it (schema changes). REQUIRES: mu_ held.
  Result<void> ExecOnce(std::string_view sql, std::string_view what);
  // Ends the open transaction, if any, discarding its changes. REQUIRES: mu_ held.
  void RollbackLocked();
  // An Error for SQLite result code `rc` while doing `what`. REQUIRES: mu_ held.
  Error SqliteError(int rc, std::string_view what) const;

  // Runs `body` (returning Result<void>) in a write transaction: BEGIN IMMEDIATE, then COMMIT
  // when it succeeds, or ROLLBACK. REQUIRES: mu_ held.
  template <typename Body>
  Result<void> WriteTransactionLocked(Body&& body);
  // Runs each of `writes` in order; `what` completes "cannot ..." on failure. REQUIRES: mu_ held.
  Result<void> WriteLocked(const std::vector<internal::Query>& writes, std::string_view what);
  // The rows of `q`, each read by `read`; SelectOne: the first, or nullopt when none. Select
  // and SelectOne take mu_; SelectLocked REQUIRES it held.
  template <typename T>
  Result<std::vector<T>> Select(const internal::Query& q, T (*read)(sqlite3_stmt*),
                                std::string_view what);
  template <typename T>
  Result<std::optional<T>> SelectOne(const internal::Query& q, T (*read)(sqlite3_stmt*),
                                     std::string_view what);
  template <typename T>
  Result<std::vector<T>> SelectLocked(const internal::Query& q, T (*read)(sqlite3_stmt*),
                                      std::string_view what);
  // Whether `q` returns a row. REQUIRES: mu_ held.
  Result<bool> ExistsLocked(const internal::Query& q, std::string_view what);

  Result<void> ApplyLocked(const Batch& batch);
  Result<void> Migrate();
  Result<int> SchemaVersionLocked();

  const std::string path_;
  std::mutex mu_;
  sqlite3* db_;                                          // guarded by mu_
  std::unordered_map<std::string, StmtPtr> statements_;  // guarded by mu_
};

}  // namespace kiln::store

#endif  // KILN_STORE_SQLITE_STORE_H_
