#include "store/sqlite_store.h"

#include <sqlite3.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <utility>
#include <variant>

#include "store/internal/checks.h"
#include "store/internal/continue_token.h"
#include "store/internal/record_reader.h"
#include "store/internal/schema.h"
#include "store/internal/statements.h"

namespace kiln::store {

namespace {

namespace fs = std::filesystem;

// The shared statements (store/internal/statements.h) in SQLite's dialect.
const internal::Statements& Sql() { return internal::StatementsFor(internal::Dialect::kSqlite); }

constexpr std::string_view kSqliteMagic{"SQLite format 3\0", 16};

int64_t NowMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string Quote(std::string_view s) { return "\"" + std::string(s) + "\""; }

std::unexpected<Error> NotKilnDatabase(const std::string& path, std::string_view why) {
  return MakeError(Code::kFailedPrecondition, path + " is not a kiln database (" +
                                                  std::string(why) +
                                                  "); move it aside or pass another --data-dir");
}

Code CodeFor(int rc) {
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
    case SQLITE_PROTOCOL:
    case SQLITE_READONLY:
      return Code::kUnavailable;
    case SQLITE_FULL:
    case SQLITE_TOOBIG:
    case SQLITE_NOMEM:
      return Code::kResourceExhausted;
    case SQLITE_CONSTRAINT:
      switch (rc) {
        case SQLITE_CONSTRAINT_FOREIGNKEY:
          return Code::kFailedPrecondition;
        case SQLITE_CONSTRAINT_PRIMARYKEY:
        case SQLITE_CONSTRAINT_UNIQUE:
          return Code::kAlreadyExists;
        default:
          return Code::kInvalidArgument;
      }
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return Code::kFailedPrecondition;
    default:
      return Code::kInternal;
  }
}

// Binds parameters left to right and remembers the first failure.
class Binder {
 public:
  explicit Binder(sqlite3_stmt* stmt) : stmt_(stmt) {}

  // `s` must stay alive until the statement is reset (SQLITE_STATIC: no copy).
  Binder& Text(std::string_view s) {
    if (rc_ == SQLITE_OK) {
      rc_ = sqlite3_bind_text64(stmt_, ++index_, s.data(), s.size(), SQLITE_STATIC, SQLITE_UTF8);
    }
    return *this;
  }
  Binder& Int(int64_t v) {
    if (rc_ == SQLITE_OK) rc_ = sqlite3_bind_int64(stmt_, ++index_, v);
    return *this;
  }
  Binder& OptionalInt(const std::optional<int>& v) {
    if (rc_ == SQLITE_OK) {
      rc_ = v ? sqlite3_bind_int64(stmt_, ++index_, *v) : sqlite3_bind_null(stmt_, ++index_);
    }
    return *this;
  }
  // Each of `params`, left to right. They must stay alive until the statement is reset.
  Binder& Params(const std::vector<internal::Param>& params) {
    for (const internal::Param& p : params) {
      if (const auto* text = std::get_if<std::string>(&p)) {
        Text(*text);
      } else {
        Int(std::get<int64_t>(p));
      }
    }
    return *this;
  }
  int rc() const { return rc_; }

 private:
  sqlite3_stmt* stmt_;
  int index_ = 0;
  int rc_ = SQLITE_OK;
};

// Reads columns left to right.
class Reader {
 public:
  explicit Reader(sqlite3_stmt* stmt) : stmt_(stmt) {}

  std::string Text() {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, index_));
    int n = sqlite3_column_bytes(stmt_, index_++);
    return p ? std::string(p, static_cast<size_t>(n)) : std::string();
  }
  int64_t Int() { return sqlite3_column_int64(stmt_, index_++); }
  std::optional<int> OptionalInt() {
    if (sqlite3_column_type(stmt_, index_) == SQLITE_NULL) {
      ++index_;
      return std::nullopt;
    }
    return static_cast<int>(sqlite3_column_int64(stmt_, index_++));
  }

 private:
  sqlite3_stmt* stmt_;
  int index_ = 0;
};

WorkflowRecord ReadWorkflow(sqlite3_stmt* stmt) {
  Reader r(stmt);
  return internal::ReadWorkflowRow(r);
}

NodeRecord ReadNode(sqlite3_stmt* stmt) {
  Reader r(stmt);
  return internal::ReadNodeRow(r);
}

ParameterRecord ReadParameter(sqlite3_stmt* stmt) {
  Reader r(stmt);
  return internal::ReadParameterRow(r);
}

ArtifactRecord ReadArtifact(sqlite3_stmt* stmt) {
  Reader r(stmt);
  return internal::ReadArtifactRow(r);
}

EventRecord ReadEvent(sqlite3_stmt* stmt) {
  Reader r(stmt);
  return internal::ReadEventRow(r);
}

TemplateRecord ReadTemplate(sqlite3_stmt* stmt) {
  Reader r(stmt);
  return internal::ReadTemplateRow(r);
}

// The checks Open makes before SQLite touches the file, so that every failure a person can fix
// gets words that say how, and a file that is not SQLite is never handed to SQLite.
Result<void> CheckPath(const std::string& path, const SqliteOptions& options) {
  fs::path file(path);
  fs::path dir = file.parent_path();
  if (dir.empty()) dir = ".";
  std::error_code ec;
  fs::file_status dir_status = fs::status(dir, ec);
  if (!fs::exists(dir_status)) {
    return MakeError(Code::kInvalidArgument,
                     "cannot create database " + path + ": directory " + dir.string() +
                         " does not exist; create it or pass another --data-dir");
  }
  if (!fs::is_directory(dir_status)) {
    return MakeError(Code::kInvalidArgument, "cannot create database " + path + ": " +
                                                 dir.string() +
                                                 " is not a directory; pass another --data-dir");
  }
  // SQLite creates the -wal and -shm files beside the database, so the directory itself must be
  // writable even when the database file already exists.
  if (access(dir.c_str(), W_OK | X_OK) != 0) {
    return MakeError(Code::kInvalidArgument,
                     "cannot open database " + path + ": directory " + dir.string() +
                         " is not writable (" + std::strerror(errno) +
                         "); fix its permissions or pass another --data-dir");
  }
  fs::file_status file_status = fs::status(file, ec);
  if (!fs::exists(file_status)) {
    if (!options.create_if_missing) {
      return MakeError(Code::kNotFound, "database " + path +
                                            " does not exist; check --data-dir, or run a "
                                            "workflow first to create it");
    }
    return {};
  }
  if (fs::is_directory(file_status)) {
    return MakeError(Code::kInvalidArgument, "cannot open database " + path +
                                                 ": it is a directory; pass another --data-dir");
  }
  if (access(path.c_str(), R_OK | W_OK) != 0) {
    return MakeError(Code::kInvalidArgument, "cannot open database " + path + ": " +
                                                 std::strerror(errno) +
                                                 "; fix its permissions or pass another "
                                                 "--data-dir");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return MakeError(Code::kUnavailable,
                     "cannot read database " + path + ": " + std::strerror(errno));
  }
  char header[16] = {};
  in.read(header, sizeof header);
  std::streamsize got = in.gcount();
  if (got == 0) return {};  // an empty file: SQLite makes it a new database
  if (got < static_cast<std::streamsize>(sizeof header) ||
      std::string_view(header, sizeof header) != kSqliteMagic) {
    return NotKilnDatabase(path, "file is not a database");
  }
  return {};
}

}  // namespace

// A cached statement in use: reset and unbound when it goes out of scope, so that a SELECT that
// stopped early does not keep its read transaction (and WAL snapshot) open.
class SqliteStore::Stmt {
 public:
  // `owned`: a statement that is not cached, finalized after the reset.
  explicit Stmt(sqlite3_stmt* stmt, StmtPtr owned = nullptr)
      : stmt_(stmt), owned_(std::move(owned)) {}
  Stmt(Stmt&& other) noexcept
      : stmt_(std::exchange(other.stmt_, nullptr)), owned_(std::move(other.owned_)) {}
  Stmt& operator=(Stmt&&) = delete;
  ~Stmt() {
    if (stmt_ != nullptr) {
      sqlite3_reset(stmt_);
      sqlite3_clear_bindings(stmt_);
    }
  }
  sqlite3_stmt* get() const { return stmt_; }
  Binder Bind() const { return Binder(stmt_); }
  int Step() const { return sqlite3_step(stmt_); }

 private:
  sqlite3_stmt* stmt_;
  StmtPtr owned_;
};

struct SqliteStore::Key {};

void SqliteStore::StmtDeleter::operator()(sqlite3_stmt* stmt) const { sqlite3_finalize(stmt); }

SqliteStore::SqliteStore(const Key&, std::string path, sqlite3* db)
    : path_(std::move(path)), db_(db) {}

SqliteStore::~SqliteStore() {
  std::lock_guard lock(mu_);
  statements_.clear();
  sqlite3_close_v2(db_);
}

Result<std::unique_ptr<SqliteStore>> SqliteStore::Open(const std::string& path,
                                                       const SqliteOptions& options) {
  if (path.empty()) {
    return MakeError(Code::kInvalidArgument, "database path is empty; pass --data-dir");
  }
  bool in_memory = path == ":memory:";
  if (!in_memory) {
    if (auto checked = CheckPath(path, options); !checked) return std::unexpected(checked.error());
  }
  sqlite3* db = nullptr;
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
  if (options.create_if_missing) flags |= SQLITE_OPEN_CREATE;
  int rc = sqlite3_open_v2(path.c_str(), &db, flags, nullptr);
  if (rc != SQLITE_OK) {
    std::string why = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close_v2(db);
    return MakeError(CodeFor(rc), "cannot open database " + path + ": " + why);
  }
  auto store = std::make_unique<SqliteStore>(Key{}, path, db);
  if (auto init = store->Initialize(options); !init) return std::unexpected(init.error());
  return store;
}

Result<void> SqliteStore::Initialize(const SqliteOptions& options) {
  std::lock_guard lock(mu_);
  sqlite3_extended_result_codes(db_, 1);
  sqlite3_busy_timeout(db_, options.busy_timeout_ms);
  if (auto r = ExecOnce("PRAGMA foreign_keys = ON", "enable foreign keys"); !r) return r;

  // Read before anything writes: a file that is not a kiln database must stay as it was.
  bool has_migrations = false;
  bool has_tables = false;
  {
    auto stmt = Prepare("SELECT name FROM sqlite_master WHERE type = 'table'");
    if (!stmt) {
      if (stmt.error().code() == Code::kFailedPrecondition) {
        return NotKilnDatabase(path_, sqlite3_errmsg(db_));
      }
      return std::unexpected(stmt.error());
    }
    int rc;
    while ((rc = stmt->Step()) == SQLITE_ROW) {
      has_tables = true;
      if (Reader(stmt->get()).Text() == internal::kMigrationsTable) has_migrations = true;
    }
    if (rc != SQLITE_DONE) {
      if ((rc & 0xff) == SQLITE_NOTADB || (rc & 0xff) == SQLITE_CORRUPT) {
        return NotKilnDatabase(path_, sqlite3_errmsg(db_));
      }
      return std::unexpected(SqliteError(rc, "read the schema"));
    }
  }
  if (has_tables && !has_migrations) {
    return NotKilnDatabase(path_, "a SQLite database without kiln's schema_migrations table");
  }
  if (has_migrations) {
    auto version = SchemaVersionLocked();
    if (!version) return std::unexpected(version.error());
    if (*version > internal::kLatestSchemaVersion) {
      return MakeError(Code::kFailedPrecondition,
                       "database schema version " + std::to_string(*version) +
                           " is newer than this kiln (" +
                           std::to_string(internal::kLatestSchemaVersion) + "); upgrade kiln",
                       path_);
    }
  }
  if (sqlite3_db_readonly(db_, "main") == 1) {
    return MakeError(Code::kInvalidArgument,
                     "cannot open database " + path_ +
                         ": SQLite opened it read-only; fix its permissions or pass another "
                         "--data-dir");
  }

  // WAL: a commit appends to the log instead of rewriting pages in place, so a kill -9 at any
  // moment leaves either the whole transaction or none of it, and readers do not block the
  // writer. The journal mode is persistent in the file; in-memory databases keep "memory".
  if (path_ != ":memory:") {
    auto stmt = Prepare("PRAGMA journal_mode = WAL");
    if (!stmt) return std::unexpected(stmt.error());
    int rc = stmt->Step();
    if (rc != SQLITE_ROW) return std::unexpected(SqliteError(rc, "switch to WAL mode"));
    std::string mode = Reader(stmt->get()).Text();
    if (mode != "wal") {
      return MakeError(Code::kUnavailable,
                       "cannot switch database to WAL mode (SQLite kept \"" + mode +
                           "\"); the file system may not support shared memory",
                       path_);
    }
  }
  // FULL: in WAL mode, NORMAL skips the fsync at commit, so a power loss can drop transactions
  // Apply already reported as durable; kiln acts on them right after (sqlite_store.h).
  auto sync = options.durability == Durability::kFull ? "PRAGMA synchronous = FULL"
                                                      : "PRAGMA synchronous = NORMAL";
  if (auto r = ExecOnce(sync, "set synchronous"); !r) return r;
  return Migrate();
}

Result<void> SqliteStore::Migrate() {
  if (auto r = ExecOnce(internal::kCreateMigrationsTable, "create schema_migrations"); !r) {
    return r;
  }
  for (const internal::Migration& migration : internal::kMigrations) {
    // BEGIN IMMEDIATE takes the write lock first, so two processes opening a new file at once
    // apply each migration once: the second sees the first's row and skips it.
    if (auto r = ExecOnce("BEGIN IMMEDIATE", "begin migration"); !r) return r;
    auto version = SchemaVersionLocked();
    if (!version) {
      RollbackLocked();
      return std::unexpected(version.error());
    }
    if (*version >= migration.version) {
      RollbackLocked();
      continue;
    }
    std::string what = "migration " + std::to_string(migration.version) + " (" +
                       std::string(migration.description) + ")";
    for (std::string_view sql : migration.statements) {
      if (auto r = ExecOnce(sql, what); !r) {
        RollbackLocked();
        return r;
      }
    }
    {
      auto stmt = Prepare(Sql().insert_migration);
      if (!stmt) {
        RollbackLocked();
        return std::unexpected(stmt.error());
      }
      int rc = stmt->Bind().Int(migration.version).Int(NowMillis()).rc();
      if (rc == SQLITE_OK) rc = stmt->Step();
      if (rc != SQLITE_DONE) {
        Error error = SqliteError(rc, what);
        RollbackLocked();
        return std::unexpected(error);
      }
    }
    if (auto r = ExecOnce("COMMIT", what); !r) {
      RollbackLocked();
      return r;
    }
  }
  return {};
}

Result<int> SqliteStore::SchemaVersion() {
  std::lock_guard lock(mu_);
  return SchemaVersionLocked();
}

Result<int> SqliteStore::SchemaVersionLocked() {
  auto stmt = Prepare(Sql().schema_version);
  if (!stmt) return std::unexpected(stmt.error());
  int rc = stmt->Step();
  if (rc != SQLITE_ROW) return std::unexpected(SqliteError(rc, "read the schema version"));
  return static_cast<int>(sqlite3_column_int64(stmt->get(), 0));  // NULL (no rows) reads 0
}

Result<SqliteStore::Stmt> SqliteStore::Prepare(std::string_view sql, bool reusable) {
  if (!reusable) {
    sqlite3_stmt* raw = nullptr;
    int rc = sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()), &raw, nullptr);
    StmtPtr owned(raw);
    if (rc != SQLITE_OK) {
      return std::unexpected(SqliteError(rc, "prepare \"" + std::string(sql) + "\""));
    }
    return Stmt(raw, std::move(owned));
  }
  auto it = statements_.find(std::string(sql));
  if (it == statements_.end()) {
    sqlite3_stmt* raw = nullptr;
    int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                                SQLITE_PREPARE_PERSISTENT, &raw, nullptr);
    if (rc != SQLITE_OK) {
      sqlite3_finalize(raw);
      return std::unexpected(SqliteError(rc, "prepare \"" + std::string(sql) + "\""));
    }
    it = statements_.emplace(std::string(sql), StmtPtr(raw)).first;
  }
  return Stmt(it->second.get());
}

Result<void> SqliteStore::Exec(std::string_view sql, std::string_view what) {
  auto stmt = Prepare(sql);
  if (!stmt) return std::unexpected(stmt.error());
  int rc;
  while ((rc = stmt->Step()) == SQLITE_ROW) {
  }
  if (rc != SQLITE_DONE) return std::unexpected(SqliteError(rc, what));
  return {};
}

Result<void> SqliteStore::ExecOnce(std::string_view sql, std::string_view what) {
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()), &raw, nullptr);
  StmtPtr stmt(raw);
  if (rc == SQLITE_OK) {
    while ((rc = sqlite3_step(raw)) == SQLITE_ROW) {
    }
  }
  if (rc != SQLITE_DONE) return std::unexpected(SqliteError(rc, what));
  return {};
}

void SqliteStore::RollbackLocked() {
  if (sqlite3_get_autocommit(db_) == 0) {
    // A failed rollback leaves SQLite to roll back when the connection or process ends; the
    // caller is already returning the error that led here.
    (void)Exec("ROLLBACK", "rollback");
  }
}

Error SqliteStore::SqliteError(int rc, std::string_view what) const {
  std::string message = "cannot " + std::string(what) + ": " + sqlite3_errmsg(db_);
  if (sqlite3_errcode(db_) != rc) message += std::string(" (") + sqlite3_errstr(rc) + ")";
  return Error(CodeFor(rc), std::move(message), path_);
}

template <typename Body>
Result<void> SqliteStore::WriteTransactionLocked(Body&& body) {
  if (auto r = Exec("BEGIN IMMEDIATE", "begin a transaction"); !r) return r;
  Result<void> done = body();
  if (done) {
    done = Exec("COMMIT", "commit");
    if (done) return {};
  }
  RollbackLocked();
  return done;
}

Result<void> SqliteStore::WriteLocked(const std::vector<internal::Query>& writes,
                                      std::string_view what) {
  for (const internal::Query& q : writes) {
    auto stmt = Prepare(q.sql, q.reusable);
    if (!stmt) return std::unexpected(stmt.error());
    int rc = stmt->Bind().Params(q.params).rc();
    if (rc == SQLITE_OK) rc = stmt->Step();
    if (rc != SQLITE_DONE) return std::unexpected(SqliteError(rc, what));
  }
  return {};
}

template <typename T>
Result<std::vector<T>> SqliteStore::SelectLocked(const internal::Query& q, T (*read)(sqlite3_stmt*),
                                                 std::string_view what) {
  auto stmt = Prepare(q.sql, q.reusable);
  if (!stmt) return std::unexpected(stmt.error());
  int rc = stmt->Bind().Params(q.params).rc();
  std::vector<T> rows;
  while (rc == SQLITE_OK || rc == SQLITE_ROW) {
    rc = stmt->Step();
    if (rc == SQLITE_ROW) rows.push_back(read(stmt->get()));
  }
  if (rc != SQLITE_DONE) return std::unexpected(SqliteError(rc, what));
  return rows;
}

template <typename T>
Result<std::vector<T>> SqliteStore::Select(const internal::Query& q, T (*read)(sqlite3_stmt*),
                                           std::string_view what) {
  std::lock_guard lock(mu_);
  return SelectLocked(q, read, what);
}

template <typename T>
Result<std::optional<T>> SqliteStore::SelectOne(const internal::Query& q, T (*read)(sqlite3_stmt*),
                                                std::string_view what) {
  auto rows = Select(q, read, what);
  if (!rows) return std::unexpected(rows.error());
  if (rows->empty()) return std::nullopt;
  return std::move(rows->front());
}

Result<void> SqliteStore::Apply(const Batch& batch) {
  if (auto checked = internal::CheckBatch(batch); !checked) return checked;
  if (batch.empty()) return {};
  std::lock_guard lock(mu_);
  return WriteTransactionLocked([&] { return ApplyLocked(batch); });
}

Result<void> SqliteStore::ApplyLocked(const Batch& batch) {
  // Turns a failed step into an Error, naming the row in words a person can act on.
  auto failed = [this](int rc, const std::string& row, const std::string& uid) {
    if (rc == SQLITE_CONSTRAINT_FOREIGNKEY) {
      return std::unexpected(
          Error(Code::kFailedPrecondition,
                "cannot record " + row + ": workflow " + Quote(uid) + " does not exist", path_));
    }
    return std::unexpected(SqliteError(rc, "record " + row));
  };

  if (batch.workflow_upsert) {
    const WorkflowRecord& w = *batch.workflow_upsert;
    auto stmt = Prepare(Sql().upsert_workflow);
    if (!stmt) return std::unexpected(stmt.error());
    int rc = stmt->Bind()
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
                 .Int(w.finished_at)
                 .rc();
    if (rc == SQLITE_OK) rc = stmt->Step();
    if (rc == SQLITE_CONSTRAINT_UNIQUE) {
      return MakeError(Code::kAlreadyExists,
                       "cannot record workflow " + Quote(w.uid) + ": a workflow named " +
                           Quote(w.name) + " already exists in namespace " + Quote(w.namespace_),
                       path_);
    }
    if (rc != SQLITE_DONE) return failed(rc, "workflow " + Quote(w.uid), w.uid);
    auto labelled = WriteLocked(internal::WorkflowLabelWrites(internal::Dialect::kSqlite, w),
                                "record the labels of workflow " + Quote(w.uid));
    if (!labelled) return labelled;
  }

  for (const NodeKey& k : batch.node_deletes) {
    auto deleted = WriteLocked(internal::DeleteNodeWrites(internal::Dialect::kSqlite, k),
                               "remove node " + Quote(k.id) + " of workflow " + Quote(k.workflow_uid));
    if (!deleted) return deleted;
  }

  for (const NodeRecord& n : batch.node_upserts) {
    auto stmt = Prepare(Sql().upsert_node);
    if (!stmt) return std::unexpected(stmt.error());
    int rc = stmt->Bind()
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
                 .Text(n.outputs_json)
                 .rc();
    if (rc == SQLITE_OK) rc = stmt->Step();
    if (rc != SQLITE_DONE) return failed(rc, "node " + Quote(n.id), n.workflow_uid);
  }

  for (const ParameterRecord& p : batch.parameter_upserts) {
    auto stmt = Prepare(Sql().upsert_parameter);
    if (!stmt) return std::unexpected(stmt.error());
    int rc = stmt->Bind()
                 .Text(p.workflow_uid)
                 .Text(p.node_id)
                 .Text(p.kind)
                 .Text(p.name)
                 .Text(p.value)
                 .rc();
    if (rc == SQLITE_OK) rc = stmt->Step();
    if (rc != SQLITE_DONE) {
      return failed(rc, p.kind + " parameter " + Quote(p.name) + " of node " + Quote(p.node_id),
                    p.workflow_uid);
    }
  }

  for (const ArtifactRecord& a : batch.artifact_inserts) {
    auto stmt = Prepare(Sql().upsert_artifact);
    if (!stmt) return std::unexpected(stmt.error());
    int rc = stmt->Bind()
                 .Text(a.workflow_uid)
                 .Text(a.node_id)
                 .Text(a.direction)
                 .Text(a.name)
                 .Text(a.uri)
                 .Text(a.sha256)
                 .Int(a.size)
                 .rc();
    if (rc == SQLITE_OK) rc = stmt->Step();
    if (rc != SQLITE_DONE) {
      return failed(rc, a.direction + " artifact " + Quote(a.name) + " of node " + Quote(a.node_id),
                    a.workflow_uid);
    }
  }

  if (!batch.events.empty()) {
    // The counter is read inside the write transaction, so seqs are strictly increasing in
    // commit order even when several processes share the file.
    int64_t seq = 0;
    {
      auto stmt = Prepare(Sql().read_event_seq);
      if (!stmt) return std::unexpected(stmt.error());
      int rc = stmt->Step();
      if (rc != SQLITE_ROW) return std::unexpected(SqliteError(rc, "read the event counter"));
      seq = sqlite3_column_int64(stmt->get(), 0);
    }
    for (const EventRecord& e : batch.events) {
      auto stmt = Prepare(Sql().insert_event);
      if (!stmt) return std::unexpected(stmt.error());
      int rc = stmt->Bind()
                   .Int(++seq)
                   .Text(e.workflow_uid)
                   .Text(e.node_id)
                   .Int(e.at)
                   .Text(e.kind)
                   .Text(e.from_phase)
                   .Text(e.to_phase)
                   .Text(e.message)
                   .Text(e.data_json)
                   .rc();
      if (rc == SQLITE_OK) rc = stmt->Step();
      if (rc != SQLITE_DONE) {
        return failed(rc, e.kind + " event of node " + Quote(e.node_id), e.workflow_uid);
      }
    }
    auto stmt = Prepare(Sql().write_event_seq);
    if (!stmt) return std::unexpected(stmt.error());
    int rc = stmt->Bind().Int(seq).rc();
    if (rc == SQLITE_OK) rc = stmt->Step();
    if (rc != SQLITE_DONE) return std::unexpected(SqliteError(rc, "update the event counter"));
  }
  auto stmt = Prepare(Sql().count_change);
  if (!stmt) return std::unexpected(stmt.error());
  if (int rc = stmt->Step(); rc != SQLITE_DONE) return std::unexpected(SqliteError(rc, "count the change"));
  return {};
}

Result<std::optional<WorkflowRecord>> SqliteStore::GetWorkflow(const std::string& uid) {
  return SelectOne(internal::Query{Sql().get_workflow, {uid}}, ReadWorkflow, "read workflow");
}

Result<std::optional<WorkflowRecord>> SqliteStore::FindWorkflow(const std::string& namespace_,
                                                                const std::string& name) {
  if (name.empty()) return std::nullopt;
  return SelectOne(internal::Query{Sql().find_workflow, {namespace_, name}}, ReadWorkflow,
                   "read workflow");
}

Result<WorkflowPage> SqliteStore::ListWorkflows(const WorkflowFilter& filter) {
  auto query = internal::ListWorkflowsQuery(internal::Dialect::kSqlite, filter);
  if (!query) return std::unexpected(query.error());
  auto rows = Select(*query, ReadWorkflow, "list workflows");
  if (!rows) return std::unexpected(rows.error());
  return internal::PageOf(std::move(*rows), filter.limit);
}

Result<std::vector<NodeRecord>> SqliteStore::ListNodes(const std::string& uid) {
  return Select(internal::Query{Sql().list_nodes, {uid}}, ReadNode, "list nodes");
}

Result<std::vector<ParameterRecord>> SqliteStore::ListParameters(const std::string& uid) {
  return Select(internal::Query{Sql().list_parameters, {uid}}, ReadParameter, "list parameters");
}

Result<std::vector<ArtifactRecord>> SqliteStore::ListArtifacts(const std::string& uid) {
  return Select(internal::Query{Sql().list_artifacts, {uid}}, ReadArtifact, "list artifacts");
}

Result<std::vector<EventRecord>> SqliteStore::ListEvents(const std::string& uid, int64_t after_seq,
                                                         int limit) {
  int64_t bound = limit > 0 ? limit : std::numeric_limits<int64_t>::max();
  return Select(internal::Query{Sql().list_events, {uid, after_seq, bound}}, ReadEvent,
                "list events");
}

namespace {
int64_t ReadCount(sqlite3_stmt* stmt) { return sqlite3_column_int64(stmt, 0); }
}  // namespace

Result<std::map<std::string, int64_t>> SqliteStore::CountWorkflowsByPhase() {
  using Row = std::pair<std::string, int64_t>;
  auto rows = Select(internal::Query{Sql().count_by_phase, {}},
                     +[](sqlite3_stmt* stmt) {
                       Reader r(stmt);
                       std::string phase = r.Text();
                       return Row{std::move(phase), sqlite3_column_int64(stmt, 1)};
                     },
                     "count workflows by phase");
  if (!rows) return std::unexpected(rows.error());
  return std::map<std::string, int64_t>(rows->begin(), rows->end());
}

Result<int64_t> SqliteStore::ChangeCount() {
  auto count = SelectOne(internal::Query{Sql().read_changes, {}}, ReadCount, "read the change counter");
  if (!count) return std::unexpected(count.error());
  if (!*count) return MakeError(Code::kInternal, "cannot read the change counter: its row is missing", path_);
  return **count;
}

Result<bool> SqliteStore::ExistsLocked(const internal::Query& q, std::string_view what) {
  auto stmt = Prepare(q.sql);
  if (!stmt) return std::unexpected(stmt.error());
  int rc = stmt->Bind().Params(q.params).rc();
  if (rc == SQLITE_OK) rc = stmt->Step();
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return std::unexpected(SqliteError(rc, what));
  return rc == SQLITE_ROW;
}

Result<void> SqliteStore::DeleteWorkflow(const std::string& uid) {
  std::lock_guard lock(mu_);
  return WriteTransactionLocked([&]() -> Result<void> {
    auto exists = ExistsLocked({Sql().workflow_exists, {uid}}, "delete workflow");
    if (!exists) return std::unexpected(exists.error());
    if (!*exists) return MakeError(Code::kNotFound, "workflow " + Quote(uid) + " does not exist");
    return WriteLocked(internal::DeleteWorkflowWrites(internal::Dialect::kSqlite, uid),
                       "delete workflow");
  });
}

Result<void> SqliteStore::PutTemplate(const TemplateRecord& t) {
  if (auto checked = internal::CheckTemplate(t); !checked) return checked;
  std::lock_guard lock(mu_);
  return WriteTransactionLocked([&] {
    return WriteLocked(internal::TemplateWrites(internal::Dialect::kSqlite, t),
                       "record " + internal::TemplateName(t.kind, t.namespace_, t.name));
  });
}

Result<std::optional<TemplateRecord>> SqliteStore::GetTemplate(const std::string& kind,
                                                               const std::string& namespace_,
                                                               const std::string& name) {
  if (auto checked = internal::CheckTemplateScope(kind, namespace_, false); !checked) {
    return std::unexpected(checked.error());
  }
  return SelectOne(internal::Query{Sql().get_template, {kind, namespace_, name}}, ReadTemplate,
                   "read " + internal::TemplateName(kind, namespace_, name));
}

Result<std::vector<TemplateRecord>> SqliteStore::ListTemplates(const std::string& kind,
                                                               const std::string& namespace_) {
  if (auto checked = internal::CheckTemplateScope(kind, namespace_, true); !checked) {
    return std::unexpected(checked.error());
  }
  return Select(internal::ListTemplatesQuery(internal::Dialect::kSqlite, kind, namespace_),
                ReadTemplate, "list " + kind + "s");
}

Result<void> SqliteStore::DeleteTemplate(const std::string& kind, const std::string& namespace_,
                                         const std::string& name) {
  if (auto checked = internal::CheckTemplateScope(kind, namespace_, false); !checked) {
    return checked;
  }
  std::string what = "delete " + internal::TemplateName(kind, namespace_, name);
  std::lock_guard lock(mu_);
  return WriteTransactionLocked([&]() -> Result<void> {
    auto exists = ExistsLocked({Sql().template_exists, {kind, namespace_, name}}, what);
    if (!exists) return std::unexpected(exists.error());
    if (!*exists) {
      return MakeError(Code::kNotFound,
                       internal::TemplateName(kind, namespace_, name) + " does not exist");
    }
    return WriteLocked(
        internal::DeleteTemplateWrites(internal::Dialect::kSqlite, kind, namespace_, name), what);
  });
}

}  // namespace kiln::store
