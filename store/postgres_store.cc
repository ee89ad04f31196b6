#include "store/postgres_store.h"

#include <libpq-fe.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <limits>
#include <optional>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <variant>

#include "store/internal/checks.h"
#include "store/internal/continue_token.h"
#include "store/internal/record_reader.h"
#include "store/internal/schema.h"
#include "store/internal/statements.h"

namespace kiln::store {

namespace {

// Held (per database) while the schema is checked, created and migrated, so that several kiln
// processes starting at once apply each migration once. The value is "kiln" in ASCII.
constexpr std::string_view kMigrationLock = "SELECT pg_advisory_xact_lock(1802071150)";

const internal::Statements& Sql() { return internal::StatementsFor(internal::Dialect::kPostgres); }

int64_t NowMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string Quote(std::string_view s) { return "\"" + std::string(s) + "\""; }

// libpq's messages end with a newline and put hints on further lines ("\n\tIs the server
// running ...?"): one line reads better inside kiln's messages.
std::string OneLine(const char* message) {
  std::string out;
  bool space = false;
  for (const char* p = message != nullptr ? message : ""; *p != '\0'; ++p) {
    if (*p == '\n' || *p == '\r' || *p == '\t' || *p == ' ') {
      space = true;
      continue;
    }
    if (space && !out.empty()) out += ' ';
    space = false;
    out += *p;
  }
  return out.empty() ? "unknown error" : out;
}

// What a SQLSTATE means to the caller (docs/store.md, "What a PostgreSQL implementation must
// do"). Connection failures are decided by the connection's status, not here.
Code CodeForSqlState(std::string_view state) {
  if (state == "23505") return Code::kAlreadyExists;                    // unique_violation
  if (state == "23503") return Code::kFailedPrecondition;               // foreign_key_violation
  if (state == "53100") return Code::kResourceExhausted;                // disk_full
  if (state == "53200") return Code::kResourceExhausted;                // out_of_memory
  if (state == "40001" || state == "40P01") return Code::kUnavailable;  // serialization, deadlock
  if (state == "55P03" || state == "57014") return Code::kUnavailable;  // lock, query canceled
  if (state.starts_with("08") || state.starts_with("57P") || state == "53300") {
    return Code::kUnavailable;  // connection exceptions, shutdown, too many connections
  }
  if (state.starts_with("22")) return Code::kInvalidArgument;  // data exceptions
  return Code::kInternal;
}

struct ResultDeleter {
  void operator()(PGresult* result) const { PQclear(result); }
};
using PgResult = std::unique_ptr<PGresult, ResultDeleter>;

int64_t ParseInt(const char* text) {
  int64_t value = 0;
  std::from_chars(text, text + std::strlen(text), value);
  return value;
}

// Parameters of one statement, in text format, left to right.
class Params {
 public:
  Params() = default;
  explicit Params(const std::vector<internal::Param>& params) {
    for (const internal::Param& p : params) {
      if (const auto* text = std::get_if<std::string>(&p)) {
        Text(*text);
      } else {
        Int(std::get<int64_t>(p));
      }
    }
  }
  Params& Text(std::string_view s) {
    if (s.find('\0') != std::string_view::npos) has_nul_ = true;
    values_.emplace_back(s);
    nulls_.push_back(false);
    return *this;
  }
  Params& Int(int64_t v) {
    values_.push_back(std::to_string(v));
    nulls_.push_back(false);
    return *this;
  }
  Params& OptionalInt(const std::optional<int>& v) {
    values_.push_back(v ? std::to_string(*v) : std::string());
    nulls_.push_back(!v);
    return *this;
  }
  // PostgreSQL's text cannot hold a NUL byte (libpq would cut the value there).
  bool has_nul() const { return has_nul_; }
  std::vector<const char*> Pointers() const {
    std::vector<const char*> p;
    for (size_t i = 0; i < values_.size(); ++i)
      p.push_back(nulls_[i] ? nullptr : values_[i].c_str());
    return p;
  }

 private:
  std::vector<std::string> values_;
  std::vector<bool> nulls_;
  bool has_nul_ = false;
};

// Reads the columns of one row left to right.
class Reader {
 public:
  Reader(const PGresult* result, int row) : result_(result), row_(row) {}

  std::string Text() {
    int col = col_++;
    return std::string(PQgetvalue(result_, row_, col),
                       static_cast<size_t>(PQgetlength(result_, row_, col)));
  }
  int64_t Int() { return ParseInt(PQgetvalue(result_, row_, col_++)); }
  std::optional<int> OptionalInt() {
    int col = col_++;
    if (PQgetisnull(result_, row_, col)) return std::nullopt;
    return static_cast<int>(ParseInt(PQgetvalue(result_, row_, col)));
  }

 private:
  const PGresult* result_;
  int row_;
  int col_ = 0;
};

WorkflowRecord ReadWorkflow(const PGresult* result, int row) {
  Reader r(result, row);
  return internal::ReadWorkflowRow(r);
}

NodeRecord ReadNode(const PGresult* result, int row) {
  Reader r(result, row);
  return internal::ReadNodeRow(r);
}

ParameterRecord ReadParameter(const PGresult* result, int row) {
  Reader r(result, row);
  return internal::ReadParameterRow(r);
}

ArtifactRecord ReadArtifact(const PGresult* result, int row) {
  Reader r(result, row);
  return internal::ReadArtifactRow(r);
}

EventRecord ReadEvent(const PGresult* result, int row) {
  Reader r(result, row);
  return internal::ReadEventRow(r);
}

TemplateRecord ReadTemplate(const PGresult* result, int row) {
  Reader r(result, row);
  return internal::ReadTemplateRow(r);
}

template <typename T, typename ReadRow>
std::vector<T> ReadAll(const PGresult* result, ReadRow read) {
  std::vector<T> rows;
  int n = PQntuples(result);
  rows.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) rows.push_back(read(result, i));
  return rows;
}

void IgnoreNotice(void*, const char*) {}

}  // namespace

// One libpq connection with its prepared statements. Used by one call at a time (the pool hands
// it to one caller); not thread-safe.
class PostgresStore::Connection {
 public:
  Connection(PGconn* conn, const std::string& where) : conn_(conn), where_(where) {}
  ~Connection() { PQfinish(conn_); }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  PGconn* get() const { return conn_; }
  bool broken() const { return broken_; }

  // Runs `sql` (prepared once per connection) with `params`. `what` completes "cannot ...".
  Result<PgResult> Run(const std::string& sql, const Params& params, std::string_view what) {
    if (params.has_nul()) {
      return MakeError(Code::kInvalidArgument,
                       "cannot " + std::string(what) +
                           ": a value contains a NUL byte, which PostgreSQL text cannot hold",
                       where_);
    }
    auto it = prepared_.find(sql);
    if (it == prepared_.end()) {
      std::string name = "kiln_" + std::to_string(prepared_.size() + 1);
      PgResult prepared(PQprepare(conn_, name.c_str(), sql.c_str(), 0, nullptr));
      if (auto checked = Check(prepared.get(), what); !checked) {
        return std::unexpected(checked.error());
      }
      it = prepared_.emplace(sql, std::move(name)).first;
    }
    std::vector<const char*> values = params.Pointers();
    PgResult result(PQexecPrepared(conn_, it->second.c_str(), static_cast<int>(values.size()),
                                   values.data(), nullptr, nullptr, 0));
    if (auto checked = Check(result.get(), what); !checked) return std::unexpected(checked.error());
    return result;
  }
  Result<PgResult> Run(const std::string& sql, std::string_view what) {
    return Run(sql, Params(), what);
  }
  // Runs `q`: prepared once per connection when q.reusable, else sent with its parameters as
  // an unnamed statement, so that statements built per call do not pile up on the server.
  Result<PgResult> Run(const internal::Query& q, std::string_view what) {
    Params params(q.params);
    // A NUL byte is refused by the other Run, before anything is sent.
    if (q.reusable || params.has_nul()) return Run(q.sql, params, what);
    std::vector<const char*> values = params.Pointers();
    PgResult result(PQexecParams(conn_, q.sql.c_str(), static_cast<int>(values.size()), nullptr,
                                 values.data(), nullptr, nullptr, 0));
    if (auto checked = Check(result.get(), what); !checked) return std::unexpected(checked.error());
    return result;
  }
  // Runs each of `writes` in order.
  Result<void> RunAll(const std::vector<internal::Query>& writes, std::string_view what) {
    for (const internal::Query& q : writes) {
      auto done = Run(q, what);
      if (!done) return std::unexpected(done.error());
    }
    return {};
  }

  // Runs `sql` without preparing it: transaction control, schema changes.
  Result<void> Exec(std::string_view sql, std::string_view what) {
    PgResult result(PQexec(conn_, std::string(sql).c_str()));
    return Check(result.get(), what);
  }

  // An Error for `result` (nullptr: libpq could not even build one) while doing `what`. Marks
  // the connection broken when the server is gone.
  Result<void> Check(const PGresult* result, std::string_view what) {
    ExecStatusType status = result != nullptr ? PQresultStatus(result) : PGRES_FATAL_ERROR;
    if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return {};
    if (PQstatus(conn_) != CONNECTION_OK) {
      broken_ = true;
      return MakeError(Code::kUnavailable,
                       "cannot " + std::string(what) +
                           ": lost the connection to PostgreSQL server " + where_ + " (" +
                           OneLine(PQerrorMessage(conn_)) + ")",
                       where_);
    }
    const char* state = result != nullptr ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : nullptr;
    const char* primary =
        result != nullptr ? PQresultErrorField(result, PG_DIAG_MESSAGE_PRIMARY) : nullptr;
    last_sqlstate_ = state != nullptr ? state : "";
    std::string why = primary != nullptr ? OneLine(primary) : OneLine(PQerrorMessage(conn_));
    return MakeError(CodeForSqlState(last_sqlstate_), "cannot " + std::string(what) + ": " + why,
                     where_);
  }

  // The SQLSTATE of the last failed statement ("" when none had one).
  const std::string& last_sqlstate() const { return last_sqlstate_; }

  bool reused = false;       // taken from the pool rather than connected for this call
  bool commit_sent = false;  // this call sent COMMIT: a failure now leaves its outcome unknown
  // The id of this call's transaction, when it asked for one (Apply): what CheckLostCommit asks
  // about when the connection is lost after COMMIT was sent.
  std::optional<int64_t> xid;

 private:
  PGconn* conn_;
  const std::string& where_;  // the store's display URL, which outlives its connections
  bool broken_ = false;
  std::string last_sqlstate_;
  std::unordered_map<std::string, std::string> prepared_;  // sql -> statement name
};

// A connection taken from the pool for one call; gives it back when destroyed.
class PostgresStore::Lease {
 public:
  Lease(PostgresStore* store, std::unique_ptr<Connection> conn)
      : store_(store), conn_(std::move(conn)) {}
  Lease(Lease&& other) noexcept
      : store_(std::exchange(other.store_, nullptr)), conn_(std::move(other.conn_)) {}
  Lease& operator=(Lease&&) = delete;
  ~Lease() {
    if (store_ != nullptr) store_->Release(std::move(conn_));
  }
  Connection& operator*() const { return *conn_; }

 private:
  PostgresStore* store_;
  std::unique_ptr<Connection> conn_;
};

struct PostgresStore::Key {};

PostgresStore::PostgresStore(const Key&, std::string url, std::string display_url,
                             PostgresOptions options)
    : url_(std::move(url)), display_url_(std::move(display_url)), options_(std::move(options)) {}

PostgresStore::~PostgresStore() {
  std::lock_guard lock(mu_);
  // Callers must not be inside a call while the store is destroyed, so every connection is idle.
  idle_.clear();
}

std::string PostgresStore::RedactUrl(std::string_view url) {
  constexpr std::string_view kUnparsable = "<unparsable connection string>";
  char* errmsg = nullptr;
  PQconninfoOption* options = PQconninfoParse(std::string(url).c_str(), &errmsg);
  PQfreemem(errmsg);
  if (options == nullptr) return std::string(kUnparsable);
  std::string out;
  bool is_url = url.starts_with("postgresql://") || url.starts_with("postgres://");
  if (is_url) {
    // scheme://[userinfo@]hosts[/dbname][?query]: drop ":password" from the userinfo and the
    // password parameter from the query; keep the rest as written.
    size_t scheme_end = url.find("://") + 3;
    size_t authority_end = url.find_first_of("/?", scheme_end);
    if (authority_end == std::string_view::npos) authority_end = url.size();
    std::string_view authority = url.substr(scheme_end, authority_end - scheme_end);
    out = std::string(url.substr(0, scheme_end));
    size_t at = authority.rfind('@');
    if (at != std::string_view::npos) {
      std::string_view userinfo = authority.substr(0, at);
      out += std::string(userinfo.substr(0, userinfo.find(':'))) + "@";
      authority.remove_prefix(at + 1);
    }
    out += std::string(authority);
    std::string_view rest = url.substr(authority_end);
    size_t question = rest.find('?');
    out += std::string(rest.substr(0, question));
    if (question != std::string_view::npos) {
      std::string_view query = rest.substr(question + 1);
      std::string kept;
      while (!query.empty()) {
        size_t amp = query.find('&');
        std::string_view param = query.substr(0, amp);
        if (!param.starts_with("password=") && param != "password") {
          if (!kept.empty()) kept += '&';
          kept += std::string(param);
        }
        query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
      }
      if (!kept.empty()) out += "?" + kept;
    }
  } else {
    // keyword=value pairs: rebuilt from what libpq parsed, without the password.
    for (PQconninfoOption* option = options; option->keyword != nullptr; ++option) {
      if (option->val == nullptr || std::string_view(option->keyword) == "password") continue;
      std::string value = option->val;
      bool quote = value.empty() || value.find_first_of(" '\\") != std::string::npos;
      if (quote) {
        std::string escaped;
        for (char c : value) {
          if (c == '\'' || c == '\\') escaped += '\\';
          escaped += c;
        }
        value = "'" + escaped + "'";
      }
      if (!out.empty()) out += ' ';
      out += std::string(option->keyword) + "=" + value;
    }
  }
  PQconninfoFree(options);
  return out;
}

Result<std::unique_ptr<PostgresStore>> PostgresStore::Open(const std::string& url,
                                                           const PostgresOptions& options) {
  if (url.empty()) {
    return MakeError(Code::kInvalidArgument,
                     "PostgreSQL connection string is empty; pass a URL such as "
                     "postgresql://user@host:5432/kiln");
  }
  if (options.pool_size <= 0 || options.connect_attempts <= 0) {
    return MakeError(Code::kInvalidArgument,
                     "PostgreSQL pool_size and connect_attempts must be positive");
  }
  {
    char* errmsg = nullptr;
    PQconninfoOption* parsed = PQconninfoParse(url.c_str(), &errmsg);
    std::string why = OneLine(errmsg);
    PQfreemem(errmsg);
    if (parsed == nullptr) {
      return MakeError(Code::kInvalidArgument,
                       "invalid PostgreSQL connection string (" + why +
                           "); pass a URL such as postgresql://user@host:5432/kiln");
    }
    PQconninfoFree(parsed);
  }
  auto store = std::make_unique<PostgresStore>(Key{}, url, RedactUrl(url), options);
  if (auto migrated = store->Migrate(); !migrated) return std::unexpected(migrated.error());
  return store;
}

Result<std::unique_ptr<PostgresStore::Connection>> PostgresStore::Connect() {
  // Ours first, the URL last: a setting in the URL wins over kiln's default for it.
  std::string timeout = std::to_string(options_.connect_timeout_s);
  const char* keywords[] = {
      "connect_timeout",     "application_name", "client_encoding", "keepalives_idle",
      "keepalives_interval", "keepalives_count", "dbname",          nullptr};
  const char* values[] = {timeout.c_str(), "kiln", "UTF8", "30", "10", "3", url_.c_str(), nullptr};
  std::chrono::milliseconds backoff = options_.initial_backoff;
  std::string why;
  for (int attempt = 1;; ++attempt) {
    PGconn* raw = PQconnectdbParams(keywords, values, /*expand_dbname=*/1);
    auto conn = std::make_unique<Connection>(raw, display_url_);
    if (raw != nullptr && PQstatus(raw) == CONNECTION_OK) {
      PQsetNoticeProcessor(raw, IgnoreNotice, nullptr);
      // Apply must return only once its commit is durable, whatever the server's default.
      auto set = conn->Exec("SET synchronous_commit TO on", "set synchronous_commit");
      if (set) return conn;
      why = set.error().message();
    } else {
      why = raw != nullptr ? OneLine(PQerrorMessage(raw)) : "out of memory";
    }
    if (attempt >= options_.connect_attempts) break;
    std::this_thread::sleep_for(backoff);
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
  return MakeError(Code::kUnavailable,
                   "cannot connect to PostgreSQL server " + display_url_ + " (" + why +
                       "); tried " + std::to_string(options_.connect_attempts) + " times",
                   display_url_);
}

Result<PostgresStore::Lease> PostgresStore::Acquire() {
  std::unique_lock lock(mu_);
  auto deadline = std::chrono::steady_clock::now() + options_.acquire_timeout;
  while (idle_.empty() && open_ >= options_.pool_size) {
    if (released_.wait_until(lock, deadline) == std::cv_status::timeout && idle_.empty() &&
        open_ >= options_.pool_size) {
      return MakeError(Code::kUnavailable,
                       "all " + std::to_string(options_.pool_size) +
                           " connections to PostgreSQL server " + display_url_ +
                           " stayed in use for " +
                           std::to_string(options_.acquire_timeout.count()) + " ms",
                       display_url_);
    }
  }
  if (!idle_.empty()) {
    std::unique_ptr<Connection> conn = std::move(idle_.back());
    idle_.pop_back();
    conn->reused = true;
    return Lease(this, std::move(conn));
  }
  ++open_;
  lock.unlock();
  auto conn = Connect();
  if (!conn) {
    lock.lock();
    --open_;
    released_.notify_one();
    return std::unexpected(conn.error());
  }
  return Lease(this, std::move(*conn));
}

void PostgresStore::Release(std::unique_ptr<Connection> conn) {
  // A call that failed mid-transaction leaves it open; end it before another call gets it.
  if (!conn->broken() && PQtransactionStatus(conn->get()) != PQTRANS_IDLE) {
    (void)conn->Exec("ROLLBACK", "roll back");
  }
  bool keep = !conn->broken() && PQtransactionStatus(conn->get()) == PQTRANS_IDLE;
  std::vector<std::unique_ptr<Connection>> closing;
  {
    std::lock_guard lock(mu_);
    if (keep) {
      conn->commit_sent = false;
      conn->xid.reset();
      idle_.push_back(std::move(conn));
    } else {
      --open_;
      closing.push_back(std::move(conn));
      if (closing.back()->broken()) {
        // The server went away: the idle connections are most likely dead too, and finding
        // that out one failed call at a time would fail as many calls.
        open_ -= static_cast<int>(idle_.size());
        for (auto& idle : idle_) closing.push_back(std::move(idle));
        idle_.clear();
      }
    }
  }
  released_.notify_all();
  // `closing` closes its connections here, outside the lock.
}

template <typename T, typename Body>
Result<T> PostgresStore::WithConnection(Body&& body) {
  for (int attempt = 0;; ++attempt) {
    std::optional<int64_t> lost_xid;
    std::optional<Error> lost;
    {
      auto lease = Acquire();
      if (!lease) return std::unexpected(lease.error());
      Connection& conn = **lease;
      Result<T> result = body(conn);
      if (result || !conn.broken()) return result;
      if (conn.commit_sent && conn.xid) {
        lost_xid = conn.xid;
        lost = result.error();
      } else if (attempt > 0 || !conn.reused || conn.commit_sent) {
        return result;
      }
      // Else a pooled connection found dead before COMMIT was sent: nothing of this call can
      // have been committed, so it is safe to run it once more on a fresh connection.
    }  // The dead connection goes back first, and the idle ones (as dead) with it.
    if constexpr (std::is_void_v<T>) {
      if (lost_xid) return CheckLostCommit(*lost_xid, *lost);
    }
  }
}

Result<void> PostgresStore::CheckLostCommit(int64_t xid, const Error& lost) {
  const auto deadline = std::chrono::steady_clock::now() + options_.commit_check_timeout;
  std::chrono::milliseconds backoff = options_.initial_backoff;
  std::string why;
  for (;;) {
    auto lease = Acquire();  // tries connect_attempts times itself
    if (lease) {
      auto status = (**lease).Run("SELECT txid_status($1)", Params().Int(xid),
                                  "ask whether a lost commit took effect");
      if (status) {
        std::string_view s =
            PQgetisnull(status->get(), 0, 0) ? "" : PQgetvalue(status->get(), 0, 0);
        if (s == "committed") return {};
        if (s == "aborted") return std::unexpected(lost);
        if (s.empty()) {
          why = "the server no longer knows the transaction";
          break;
        }
        why = "the transaction is still " + std::string(s);  // its session has not ended yet
      } else {
        why = status.error().message();
      }
    } else {
      why = lease.error().message();
    }
    if (std::chrono::steady_clock::now() + backoff > deadline) break;
    std::this_thread::sleep_for(backoff);
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
  return MakeError(
      Code::kInternal,
      lost.message() + "; whether its commit took effect cannot be known (" + why + ")",
      display_url_);
}

Result<void> PostgresStore::Migrate() {
  return WithConnection<void>([&](Connection& conn) -> Result<void> {
    // First, under the lock and before anything is written: is this a database kiln may use?
    if (auto r = conn.Exec("BEGIN", "begin a transaction"); !r) return r;
    if (auto r = conn.Exec(kMigrationLock, "lock the schema"); !r) return r;
    auto tables = conn.Run(
        "SELECT to_regclass('schema_migrations') IS NOT NULL, to_regclass('workflows') IS NOT "
        "NULL",
        "read the schema");
    if (!tables) return std::unexpected(tables.error());
    bool has_migrations = std::string_view(PQgetvalue(tables->get(), 0, 0)) == "t";
    bool has_workflows = std::string_view(PQgetvalue(tables->get(), 0, 1)) == "t";
    if (has_workflows && !has_migrations) {
      return MakeError(Code::kFailedPrecondition,
                       "PostgreSQL database " + display_url_ +
                           " has a workflows table but no schema_migrations table: it is not a "
                           "kiln database; pass another database",
                       display_url_);
    }
    if (has_migrations) {
      auto version = conn.Run(Sql().schema_version, "read the schema version");
      if (!version) return std::unexpected(version.error());
      int64_t v = ParseInt(PQgetvalue(version->get(), 0, 0));
      if (v > internal::kLatestSchemaVersion) {
        return MakeError(Code::kFailedPrecondition,
                         "database schema version " + std::to_string(v) +
                             " is newer than this kiln (" +
                             std::to_string(internal::kLatestSchemaVersion) + "); upgrade kiln",
                         display_url_);
      }
    } else if (auto r = conn.Exec(internal::kCreateMigrationsTable, "create schema_migrations");
               !r) {
      return r;
    }
    if (auto r = conn.Exec("COMMIT", "commit"); !r) return r;

    for (const internal::Migration& migration : internal::kMigrations) {
      std::string what = "apply migration " + std::to_string(migration.version) + " (" +
                         std::string(migration.description) + ")";
      if (auto r = conn.Exec("BEGIN", "begin a transaction"); !r) return r;
      if (auto r = conn.Exec(kMigrationLock, "lock the schema"); !r) return r;
      auto version = conn.Run(Sql().schema_version, "read the schema version");
      if (!version) return std::unexpected(version.error());
      if (ParseInt(PQgetvalue(version->get(), 0, 0)) >= migration.version) {
        if (auto r = conn.Exec("ROLLBACK", "roll back"); !r) return r;
        continue;
      }
      for (std::string_view sql : migration.statements) {
        if (auto r = conn.Exec(sql, what); !r) return r;
      }
      auto inserted =
          conn.Run(Sql().insert_migration, Params().Int(migration.version).Int(NowMillis()), what);
      if (!inserted) return std::unexpected(inserted.error());
      if (auto r = conn.Exec("COMMIT", what); !r) return r;
    }
    return {};
  });
}

Result<int> PostgresStore::SchemaVersion() {
  return WithConnection<int>([&](Connection& conn) -> Result<int> {
    auto version = conn.Run(Sql().schema_version, "read the schema version");
    if (!version) return std::unexpected(version.error());
    return static_cast<int>(ParseInt(PQgetvalue(version->get(), 0, 0)));  // NULL reads ""
  });
}

Result<void> PostgresStore::Apply(const Batch& batch) {
  if (auto checked = internal::CheckBatch(batch); !checked) return checked;
  if (batch.empty()) return {};

  return WithConnection<void>([&](Connection& conn) -> Result<void> {
    // Runs one row's statement; names the row in words a person can act on when it fails.
    auto record = [&](const std::string& sql, const Params& params, const std::string& row,
                      const std::string& uid) -> Result<void> {
      auto done = conn.Run(sql, params, "record " + row);
      if (done) return {};
      if (!conn.broken() && conn.last_sqlstate() == "23503") {
        return MakeError(Code::kFailedPrecondition,
                         "cannot record " + row + ": workflow " + Quote(uid) + " does not exist",
                         display_url_);
      }
      return std::unexpected(done.error());
    };

    if (auto r = conn.Exec("BEGIN", "begin a transaction"); !r) return r;
    // The transaction's id: should the connection be lost after COMMIT was sent, the server
    // can still say whether it committed (CheckLostCommit).
    auto xid = conn.Run("SELECT txid_current()", "begin a transaction");
    if (!xid) return std::unexpected(xid.error());
    conn.xid = ParseInt(PQgetvalue(xid->get(), 0, 0));

    if (batch.workflow_upsert) {
      const WorkflowRecord& w = *batch.workflow_upsert;
      auto done = record(Sql().upsert_workflow,
                         Params()
                             .Text(w.uid)
                             .Text(w.name)
                             .Text(w.namespace_)
                             .Text(w.kind)
                             .Text(w.spec)
                             .Text(w.parameters_json)
                             .Text(w.phase)
                             .Text(w.message)
                             .Int(w.created_at)
                             .Int(w.started_at)
                             .Int(w.finished_at),
                         "workflow " + Quote(w.uid), w.uid);
      if (!done && !conn.broken() && conn.last_sqlstate() == "23505") {
        return MakeError(Code::kAlreadyExists,
                         "cannot record workflow " + Quote(w.uid) + ": a workflow named " +
                             Quote(w.name) + " already exists in namespace " + Quote(w.namespace_),
                         display_url_);
      }
      if (!done) return done;
      auto labelled = conn.RunAll(internal::WorkflowLabelWrites(internal::Dialect::kPostgres, w),
                                  "record the labels of workflow " + Quote(w.uid));
      if (!labelled) return labelled;
    }

    for (const NodeKey& k : batch.node_deletes) {
      auto deleted = conn.RunAll(internal::DeleteNodeWrites(internal::Dialect::kPostgres, k),
                                 "remove node " + Quote(k.id) + " of workflow " + Quote(k.workflow_uid));
      if (!deleted) return deleted;
    }

    for (const NodeRecord& n : batch.node_upserts) {
      auto done = record(Sql().upsert_node,
                         Params()
                             .Text(n.workflow_uid)
                             .Text(n.id)
                             .Text(n.parent_id)
                             .Text(n.display_name)
                             .Text(n.template_name)
                             .Text(n.type)
                             .Text(n.phase)
                             .Int(n.attempt)
                             .Int(n.started_at)
                             .Int(n.finished_at)
                             .OptionalInt(n.exit_code)
                             .Text(n.message)
                             .Text(n.inputs_json)
                             .Text(n.outputs_json),
                         "node " + Quote(n.id), n.workflow_uid);
      if (!done) return done;
    }

    for (const ParameterRecord& p : batch.parameter_upserts) {
      auto done = record(
          Sql().upsert_parameter,
          Params().Text(p.workflow_uid).Text(p.node_id).Text(p.kind).Text(p.name).Text(p.value),
          p.kind + " parameter " + Quote(p.name) + " of node " + Quote(p.node_id), p.workflow_uid);
      if (!done) return done;
    }

    for (const ArtifactRecord& a : batch.artifact_inserts) {
      auto done =
          record(Sql().upsert_artifact,
                 Params()
                     .Text(a.workflow_uid)
                     .Text(a.node_id)
                     .Text(a.direction)
                     .Text(a.name)
                     .Text(a.uri)
                     .Text(a.sha256)
                     .Int(a.size),
                 a.direction + " artifact " + Quote(a.name) + " of node " + Quote(a.node_id),
                 a.workflow_uid);
      if (!done) return done;
    }

    if (!batch.events.empty()) {
      // FOR UPDATE holds the counter's row until COMMIT: a concurrent batch waits here and then
      // reads the value this one wrote, so seqs are strictly increasing in commit order and a
      // reader tailing with after_seq never sees a later seq before an earlier one.
      auto counter = conn.Run(Sql().read_event_seq, "read the event counter");
      if (!counter) return std::unexpected(counter.error());
      if (PQntuples(counter->get()) != 1) {
        return MakeError(Code::kInternal, "cannot read the event counter: its row is missing",
                         display_url_);
      }
      int64_t seq = ParseInt(PQgetvalue(counter->get(), 0, 0));
      for (const EventRecord& e : batch.events) {
        auto done = record(Sql().insert_event,
                           Params()
                               .Int(++seq)
                               .Text(e.workflow_uid)
                               .Text(e.node_id)
                               .Int(e.at)
                               .Text(e.kind)
                               .Text(e.from_phase)
                               .Text(e.to_phase)
                               .Text(e.message)
                               .Text(e.data_json),
                           e.kind + " event of node " + Quote(e.node_id), e.workflow_uid);
        if (!done) return done;
      }
      auto written = conn.Run(Sql().write_event_seq, Params().Int(seq), "update the event counter");
      if (!written) return std::unexpected(written.error());
    }
    if (auto r = conn.Run(Sql().count_change, "count the change"); !r) return std::unexpected(r.error());

    conn.commit_sent = true;
    return conn.Exec("COMMIT", "commit");
  });
}

template <typename T, typename Read>
Result<std::vector<T>> PostgresStore::Select(const internal::Query& q, Read read,
                                             std::string_view what) {
  return WithConnection<std::vector<T>>([&](Connection& conn) -> Result<std::vector<T>> {
    auto rows = conn.Run(q, what);
    if (!rows) return std::unexpected(rows.error());
    return ReadAll<T>(rows->get(), read);
  });
}

template <typename T, typename Read>
Result<std::optional<T>> PostgresStore::SelectOne(const internal::Query& q, Read read,
                                                  std::string_view what) {
  auto rows = Select<T>(q, read, what);
  if (!rows) return std::unexpected(rows.error());
  if (rows->empty()) return std::nullopt;
  return std::move(rows->front());
}

Result<std::optional<WorkflowRecord>> PostgresStore::GetWorkflow(const std::string& uid) {
  return SelectOne<WorkflowRecord>(internal::Query{Sql().get_workflow, {uid}}, ReadWorkflow,
                                   "read workflow");
}

Result<std::optional<WorkflowRecord>> PostgresStore::FindWorkflow(const std::string& namespace_,
                                                                  const std::string& name) {
  if (name.empty()) return std::nullopt;
  return SelectOne<WorkflowRecord>(internal::Query{Sql().find_workflow, {namespace_, name}},
                                   ReadWorkflow, "read workflow");
}

Result<WorkflowPage> PostgresStore::ListWorkflows(const WorkflowFilter& filter) {
  auto query = internal::ListWorkflowsQuery(internal::Dialect::kPostgres, filter);
  if (!query) return std::unexpected(query.error());
  auto rows = Select<WorkflowRecord>(*query, ReadWorkflow, "list workflows");
  if (!rows) return std::unexpected(rows.error());
  return internal::PageOf(std::move(*rows), filter.limit);
}

Result<std::vector<NodeRecord>> PostgresStore::ListNodes(const std::string& uid) {
  return Select<NodeRecord>(internal::Query{Sql().list_nodes, {uid}}, ReadNode, "list nodes");
}

Result<std::vector<ParameterRecord>> PostgresStore::ListParameters(const std::string& uid) {
  return Select<ParameterRecord>(internal::Query{Sql().list_parameters, {uid}}, ReadParameter,
                                 "list parameters");
}

Result<std::vector<ArtifactRecord>> PostgresStore::ListArtifacts(const std::string& uid) {
  return Select<ArtifactRecord>(internal::Query{Sql().list_artifacts, {uid}}, ReadArtifact,
                                "list artifacts");
}

Result<std::vector<EventRecord>> PostgresStore::ListEvents(const std::string& uid,
                                                           int64_t after_seq, int limit) {
  int64_t bound = limit > 0 ? limit : std::numeric_limits<int64_t>::max();
  return Select<EventRecord>(internal::Query{Sql().list_events, {uid, after_seq, bound}}, ReadEvent,
                             "list events");
}

Result<std::map<std::string, int64_t>> PostgresStore::CountWorkflowsByPhase() {
  using Row = std::pair<std::string, int64_t>;
  auto rows = Select<Row>(internal::Query{Sql().count_by_phase, {}},
                          [](const PGresult* r, int row) {
                            return Row{PQgetvalue(r, row, 0), ParseInt(PQgetvalue(r, row, 1))};
                          },
                          "count workflows by phase");
  if (!rows) return std::unexpected(rows.error());
  return std::map<std::string, int64_t>(rows->begin(), rows->end());
}

Result<int64_t> PostgresStore::ChangeCount() {
  auto count = SelectOne<int64_t>(internal::Query{Sql().read_changes, {}},
                                  [](const PGresult* r, int row) { return ParseInt(PQgetvalue(r, row, 0)); },
                                  "read the change counter");
  if (!count) return std::unexpected(count.error());
  if (!*count) return MakeError(Code::kInternal, "cannot read the change counter: its row is missing", display_url_);
  return **count;
}

Result<void> PostgresStore::DeleteRow(const internal::Query& exists,
                                      const std::vector<internal::Query>& deletes,
                                      const std::string& what, const std::string& not_found) {
  return WithConnection<void>([&](Connection& conn) -> Result<void> {
    if (auto r = conn.Exec("BEGIN", "begin a transaction"); !r) return r;
    auto found = conn.Run(exists, what);  // FOR UPDATE: held until COMMIT
    if (!found) return std::unexpected(found.error());
    if (PQntuples(found->get()) == 0) return MakeError(Code::kNotFound, not_found);
    if (auto r = conn.RunAll(deletes, what); !r) return r;
    conn.commit_sent = true;
    return conn.Exec("COMMIT", "commit");
  });
}

Result<void> PostgresStore::DeleteWorkflow(const std::string& uid) {
  return DeleteRow({Sql().workflow_exists, {uid}},
                   internal::DeleteWorkflowWrites(internal::Dialect::kPostgres, uid),
                   "delete workflow", "workflow " + Quote(uid) + " does not exist");
}

Result<void> PostgresStore::PutTemplate(const TemplateRecord& t) {
  if (auto checked = internal::CheckTemplate(t); !checked) return checked;
  std::vector<internal::Query> writes = internal::TemplateWrites(internal::Dialect::kPostgres, t);
  std::string what = "record " + internal::TemplateName(t.kind, t.namespace_, t.name);
  return WithConnection<void>([&](Connection& conn) -> Result<void> {
    if (auto r = conn.Exec("BEGIN", "begin a transaction"); !r) return r;
    if (auto r = conn.RunAll(writes, what); !r) return r;
    conn.commit_sent = true;
    return conn.Exec("COMMIT", "commit");
  });
}

Result<std::optional<TemplateRecord>> PostgresStore::GetTemplate(const std::string& kind,
                                                                 const std::string& namespace_,
                                                                 const std::string& name) {
  if (auto checked = internal::CheckTemplateScope(kind, namespace_, false); !checked) {
    return std::unexpected(checked.error());
  }
  return SelectOne<TemplateRecord>(internal::Query{Sql().get_template, {kind, namespace_, name}},
                                   ReadTemplate,
                                   "read " + internal::TemplateName(kind, namespace_, name));
}

Result<std::vector<TemplateRecord>> PostgresStore::ListTemplates(const std::string& kind,
                                                                 const std::string& namespace_) {
  if (auto checked = internal::CheckTemplateScope(kind, namespace_, true); !checked) {
    return std::unexpected(checked.error());
  }
  return Select<TemplateRecord>(
      internal::ListTemplatesQuery(internal::Dialect::kPostgres, kind, namespace_), ReadTemplate,
      "list " + kind + "s");
}

Result<void> PostgresStore::DeleteTemplate(const std::string& kind, const std::string& namespace_,
                                           const std::string& name) {
  if (auto checked = internal::CheckTemplateScope(kind, namespace_, false); !checked) {
    return checked;
  }
  std::string template_name = internal::TemplateName(kind, namespace_, name);
  return DeleteRow(
      {Sql().template_exists, {kind, namespace_, name}},
      internal::DeleteTemplateWrites(internal::Dialect::kPostgres, kind, namespace_, name),
      "delete " + template_name, template_name + " does not exist");
}

}  // namespace kiln::store
