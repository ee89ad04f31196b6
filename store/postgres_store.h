// PostgresStore: the Store on a PostgreSQL server (docs/store.md), through libpq.
// Thread-safety: safe to call from several threads. A small pool holds the connections: each
// call takes one for its duration (up to PostgresOptions::pool_size at once; further calls wait
// for one to come back), so calls run concurrently on the server. Several processes may share a
// database: event seqs stay strictly increasing in commit order across them.
//
// When the server goes away (restarted, failed over, the network cut), the call that finds out
// fails with kUnavailable naming the server, and the idle connections are dropped; the next call
// connects again, trying up to connect_attempts times with exponential backoff. A call that
// lost a connection it had taken from the pool before it sent COMMIT is retried once on a fresh
// connection, since nothing of it can have been committed: so a server restart between calls
// costs no error at all. When Apply loses its connection after it sent COMMIT, it asks the
// server (on a new connection, for up to PostgresOptions::commit_check_timeout) whether its
// transaction committed: success when it did, kUnavailable when it did not (nothing of it was
// recorded; calling again is safe), kInternal when that cannot be known. So a kUnavailable from
// Apply always means that nothing was recorded.
#ifndef KILN_STORE_POSTGRES_STORE_H_
#define KILN_STORE_POSTGRES_STORE_H_

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "store/store.h"

namespace kiln::store {

namespace internal {
struct Query;  // store/internal/statements.h
}  // namespace internal

struct PostgresOptions {
  int pool_size = 8;  // connections at most; > 0
  // Connecting: attempts per call, and the wait after the first failed one, doubled after each
  // further one up to max_backoff.
  int connect_attempts = 3;
  std::chrono::milliseconds initial_backoff{100};
  std::chrono::milliseconds max_backoff{2000};
  int connect_timeout_s = 10;  // per attempt (libpq connect_timeout); the URL's own one wins
  // How long a call waits for a connection when all pool_size are in use.
  std::chrono::milliseconds acquire_timeout{30000};
  // How long Apply, having lost its connection after it sent COMMIT, keeps asking the server
  // (while it restarts) whether the transaction committed.
  std::chrono::milliseconds commit_check_timeout{60000};
};

class PostgresStore final : public Store {
  struct Key;  // only Open can make one

 public:
  // Connects to the server at `url`, a libpq connection string: a URL
  // (postgresql://[user[:password]@][host][:port][/dbname][?param=value&...]) or
  // keyword=value pairs. Migrates the database's schema to the newest version.
  // Errors (each names the URL without its password):
  //   kInvalidArgument: `url` is not a connection string libpq accepts.
  //   kUnavailable: the server could not be reached or refused the connection (after
  //     options.connect_attempts tries).
  //   kFailedPrecondition: the database's schema is newer than this binary, or the database
  //     has kiln's tables but no schema_migrations table.
  // Never throws.
  static Result<std::unique_ptr<PostgresStore>> Open(const std::string& url,
                                                     const PostgresOptions& options = {});

  // Use Open(). (Public only so that Open can use std::make_unique; Key is private.)
  PostgresStore(const Key&, std::string url, std::string display_url, PostgresOptions options);
  ~PostgresStore() override;
  PostgresStore(const PostgresStore&) = delete;
  PostgresStore& operator=(const PostgresStore&) = delete;

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

  // The schema version of the database (internal::kLatestSchemaVersion after Open).
  Result<int> SchemaVersion();

  // The URL as given, with any password removed: what errors name.
  const std::string& display_url() const { return display_url_; }

  // `url` without its password (in the userinfo of a URL, or a password parameter), for
  // messages and logs. Anything that cannot be parsed is returned as "<unparsable connection
  // string>", since it might hold a password in a form this does not recognise.
  static std::string RedactUrl(std::string_view url);

 private:
  class Connection;
  class Lease;

  // Takes an idle connection or opens a new one (with the backoff of options_).
  Result<Lease> Acquire();
  // Gives `conn` back to the pool, or closes it when it is broken or mid-transaction.
  void Release(std::unique_ptr<Connection> conn);
  // Connects once, with up to connect_attempts tries. REQUIRES: mu_ not held.
  Result<std::unique_ptr<Connection>> Connect();
  // Runs `body` on a pooled connection; retries once on a fresh connection when a reused one
  // turned out to be dead before anything could have been committed.
  template <typename T, typename Body>
  Result<T> WithConnection(Body&& body);
  // Whether transaction `xid`, whose COMMIT was sent on a connection that was then lost (with
  // error `lost`), committed: {} when it did, `lost` when it did not, kInternal when the server
  // cannot tell within options_.commit_check_timeout. REQUIRES: mu_ not held.
  Result<void> CheckLostCommit(int64_t xid, const Error& lost);

  // The rows of `q`, each read by `read` (a T from a PGresult and a row number); SelectOne: the
  // first, or nullopt when none.
  template <typename T, typename Read>
  Result<std::vector<T>> Select(const internal::Query& q, Read read, std::string_view what);
  template <typename T, typename Read>
  Result<std::optional<T>> SelectOne(const internal::Query& q, Read read, std::string_view what);
  // In one transaction: kNotFound with message `not_found` when `exists` (which locks the row)
  // returns no row, else runs `deletes`.
  Result<void> DeleteRow(const internal::Query& exists, const std::vector<internal::Query>& deletes,
                         const std::string& what, const std::string& not_found);

  Result<void> Migrate();

  const std::string url_;          // as given: may hold the password
  const std::string display_url_;  // RedactUrl(url_)
  const PostgresOptions options_;

  std::mutex mu_;
  std::condition_variable released_;
  std::vector<std::unique_ptr<Connection>> idle_;  // guarded by mu_
  int open_ = 0;                                   // connections idle or in use; guarded by mu_
};

}  // namespace kiln::store

#endif  // KILN_STORE_POSTGRES_STORE_H_
