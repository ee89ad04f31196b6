// What the store tests share: the records they write, the checks they make, and one fresh
// database per test for each Store implementation (a "backend").
//
// SqliteBackend: a file in a temporary directory. PostgresBackend: a database created for the
// test on the server KILN_TEST_POSTGRES_URL names (a libpq URL whose user may create
// databases; scripts/with-postgres.sh starts a throwaway one), dropped afterwards; without the
// variable, Make() returns nullptr and says why, and the test passes without running.
// Thread-safety: a backend belongs to its test's thread; the stores it opens are thread-safe.
#ifndef KILN_TESTS_STORE_BACKENDS_H_
#define KILN_TESTS_STORE_BACKENDS_H_

#include <libpq-fe.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "store/postgres_store.h"
#include "store/sqlite_store.h"

namespace kiln::store::testing {

// A fresh directory under $TMPDIR (or /tmp), removed with everything in it at scope exit.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string pattern = std::string(base && *base ? base : "/tmp") + "/kiln-store-XXXXXX";
    std::vector<char> buf(pattern.begin(), pattern.end());
    buf.push_back('\0');
    REQUIRE(mkdtemp(buf.data()) != nullptr);
    path_ = buf.data();
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::permissions(path_, std::filesystem::perms::owner_all,
                                 std::filesystem::perm_options::add, ec);
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// How hard the opened store makes each commit durable. kFast is for tests of serialization
// that make thousands of commits (SQLite's synchronous=NORMAL; PostgreSQL is as its server is).
enum class Speed { kDurable, kFast };

class SqliteBackend {
 public:
  static std::unique_ptr<SqliteBackend> Make() { return std::make_unique<SqliteBackend>(); }

  // Opens (again) this test's database.
  Result<std::unique_ptr<Store>> Open(Speed speed = Speed::kDurable) const {
    SqliteOptions options;
    if (speed == Speed::kFast) options.durability = Durability::kNormal;
    auto store = SqliteStore::Open(path_, options);
    if (!store) return std::unexpected(store.error());
    return std::unique_ptr<Store>(std::move(*store));
  }
  // What the store's errors name as `where`.
  const std::string& where() const { return path_; }
  const std::string& path() const { return path_; }

  // Runs SQL behind the store's back, as another program would.
  void RawExec(const std::string& sql) const {
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(path_.c_str(), &db) == SQLITE_OK);
    char* err = nullptr;
    int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
    std::string message = err ? err : "";
    sqlite3_free(err);
    sqlite3_close(db);
    INFO(message);
    REQUIRE(rc == SQLITE_OK);
  }
  // The first column of the first row of `sql`, as an integer.
  int64_t RawInt(const std::string& sql) const {
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(path_.c_str(), &db) == SQLITE_OK);
    sqlite3_stmt* stmt = nullptr;
    int rc = sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr);
    if (rc == SQLITE_OK) rc = sqlite3_step(stmt);
    int64_t value = rc == SQLITE_ROW ? sqlite3_column_int64(stmt, 0) : -1;
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    REQUIRE(rc == SQLITE_ROW);
    return value;
  }

 private:
  TempDir dir_;
  std::string path_ = dir_.File("kiln.db");
};

// `url` (a libpq URL or keyword=value string) with its database replaced by `dbname`.
inline std::string WithDatabase(const std::string& url, const std::string& dbname) {
  for (std::string_view scheme : {"postgresql://", "postgres://"}) {
    if (!url.starts_with(scheme)) continue;
    size_t path = url.find_first_of("/?", scheme.size());
    if (path == std::string::npos) return url + "/" + dbname;
    size_t query = url.find('?', path);
    return url.substr(0, path) + "/" + dbname +
           (query == std::string::npos ? std::string() : url.substr(query));
  }
  return url + " dbname=" + dbname;
}

class PostgresBackend {
 public:
  // A new database on the server of KILN_TEST_POSTGRES_URL, or nullptr (with a warning) when
  // the variable is unset. Fails the test when the server cannot be used.
  static std::unique_ptr<PostgresBackend> Make() {
    const char* url = std::getenv("KILN_TEST_POSTGRES_URL");
    if (url == nullptr || *url == '\0') {
      WARN("PostgreSQL: skipped: KILN_TEST_POSTGRES_URL unset (scripts/with-postgres.sh sets it)");
      return nullptr;
    }
    return std::make_unique<PostgresBackend>(url);
  }
  // Creates the database. Use Make(), which knows whether there is a server.
  explicit PostgresBackend(std::string admin_url) : admin_url_(std::move(admin_url)) {
    static std::atomic<int> counter{0};
    std::random_device random;
    name_ = "kiln_test_" + std::to_string(getpid()) + "_" + std::to_string(counter++) + "_" +
            std::to_string(random() % 1000000);
    url_ = WithDatabase(admin_url_, name_);
    // A non-C default collation (ICU's en-US, where the server has ICU) shows that the store
    // orders text by bytes whatever the database's collation.
    std::string icu = AdminExec("CREATE DATABASE " + name_ +
                                " TEMPLATE template0 ENCODING 'UTF8' LOCALE_PROVIDER icu "
                                "ICU_LOCALE 'en-US'");
    if (!icu.empty()) {
      std::string plain = AdminExec("CREATE DATABASE " + name_);
      INFO(icu);
      INFO(plain);
      REQUIRE(plain.empty());
    }
  }
  ~PostgresBackend() {
    // FORCE: a store a failed test left open must not keep the database alive.
    (void)AdminExec("DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)");
  }
  PostgresBackend(const PostgresBackend&) = delete;
  PostgresBackend& operator=(const PostgresBackend&) = delete;

  Result<std::unique_ptr<Store>> Open(Speed = Speed::kDurable,
                                      const PostgresOptions& options = {}) const {
    auto store = PostgresStore::Open(url_, options);
    if (!store) return std::unexpected(store.error());
    return std::unique_ptr<Store>(std::move(*store));
  }
  std::string where() const { return PostgresStore::RedactUrl(url_); }
  const std::string& url() const { return url_; }
  const std::string& name() const { return name_; }

  void RawExec(const std::string& sql) const {
    std::string error = Exec(url_, sql, nullptr);
    INFO(error);
    REQUIRE(error.empty());
  }
  int64_t RawInt(const std::string& sql) const {
    std::string value;
    std::string error = Exec(url_, sql, &value);
    INFO(error);
    REQUIRE(error.empty());
    return std::stoll(value);
  }
  // Runs `sql` on the server's own database (the one KILN_TEST_POSTGRES_URL names), for what
  // cannot be done from inside the test's database. Returns libpq's error, "" on success.
  std::string AdminExec(const std::string& sql, std::string* value = nullptr) const {
    return Exec(admin_url_, sql, value);
  }

 private:
  static std::string Exec(const std::string& url, const std::string& sql, std::string* value) {
    PGconn* conn = PQconnectdb(url.c_str());
    std::string error;
    if (PQstatus(conn) != CONNECTION_OK) {
      error = PQerrorMessage(conn);
    } else {
      PQsetNoticeProcessor(
          conn, [](void*, const char*) {}, nullptr);
      PGresult* result = PQexec(conn, sql.c_str());
      ExecStatusType status = PQresultStatus(result);
      if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
        error = PQresultErrorMessage(result);
      } else if (value != nullptr && PQntuples(result) > 0) {
        *value = PQgetvalue(result, 0, 0);
      }
      PQclear(result);
    }
    PQfinish(conn);
    return error;
  }

  std::string admin_url_;
  std::string name_;
  std::string url_;
};

// A test of the behaviour every Store must have, run once per backend (TestType).
#define STORE_TEST(name) TEMPLATE_TEST_CASE(name, "[store]", SqliteBackend, PostgresBackend)

template <typename Backend>
std::unique_ptr<Store> OpenOrFail(const Backend& backend, Speed speed = Speed::kDurable) {
  auto store = backend.Open(speed);
  if (!store) FAIL(store.error().ToString());
  return std::move(*store);
}

inline WorkflowFilter Filter(const std::string& namespace_, const std::string& phase, int limit,
                             const std::string& continue_token = "") {
  WorkflowFilter f;
  f.namespace_ = namespace_;
  f.phase = phase;
  f.limit = limit;
  f.continue_token = continue_token;
  return f;
}

inline WorkflowRecord Workflow(const std::string& uid, const std::string& name,
                               const std::string& namespace_ = "default", int64_t created_at = 1000,
                               const std::string& phase = "Running") {
  WorkflowRecord w;
  w.uid = uid;
  w.name = name;
  w.namespace_ = namespace_;
  w.spec = "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata:\n  name: " + name + "\n";
  w.parameters_json = R"({"message":"hi"})";
  w.phase = phase;
  w.message = "";
  w.created_at = created_at;
  w.started_at = created_at + 5;
  return w;
}

inline NodeRecord Node(const std::string& uid, const std::string& id,
                       std::optional<int> exit_code = {}) {
  NodeRecord n;
  n.workflow_uid = uid;
  n.id = id;
  n.parent_id = uid;
  n.display_name = id;
  n.template_name = "train";
  n.type = "Pod";
  n.phase = exit_code ? (*exit_code == 0 ? "Succeeded" : "Failed") : "Running";
  n.attempt = 1;
  n.started_at = 2000;
  n.finished_at = exit_code ? 3000 : 0;
  n.exit_code = exit_code;
  n.message = exit_code && *exit_code != 0 ? "exit code 2" : "";
  n.inputs_json = R"({"parameters":[{"name":"lr","value":"0.1"}]})";
  n.outputs_json = exit_code ? R"({"parameters":[{"name":"loss","value":"0.3"}]})" : "";
  return n;
}

inline EventRecord Event(const std::string& uid, const std::string& node_id,
                         const std::string& to) {
  EventRecord e;
  e.workflow_uid = uid;
  e.node_id = node_id;
  e.at = 2500;
  e.kind = "NodePhase";
  e.from_phase = "Pending";
  e.to_phase = to;
  e.message = "";
  e.data_json = R"({"pod":"x"})";
  return e;
}

// A workflow with three nodes, parameters, artifacts and three events.
inline Batch FullBatch(const std::string& uid, const std::string& name) {
  Batch b;
  b.workflow_upsert = Workflow(uid, name);
  b.node_upserts = {Node(uid, uid + ".train(0)", 0), Node(uid, uid + ".eval", std::nullopt),
                    Node(uid, uid + ".fail", 2)};
  b.parameter_upserts = {
      {uid, "", "message", "hi", "global"},
      {uid, uid + ".train(0)", "lr", "0.1", "input"},
      {uid, uid + ".train(0)", "loss", "0.3", "output"},
  };
  b.artifact_inserts = {
      {uid, uid + ".train(0)", "model", "output", "file:///data/model.bin", std::string(64, 'a'),
       12345},
      {uid, uid + ".eval", "model", "input", "file:///data/model.bin", std::string(64, 'a'), 12345},
  };
  b.events = {Event(uid, "", "Running"), Event(uid, uid + ".train(0)", "Running"),
              Event(uid, uid + ".train(0)", "Succeeded")};
  return b;
}

inline std::vector<int64_t> Seqs(const std::vector<EventRecord>& events) {
  std::vector<int64_t> seqs;
  for (const EventRecord& e : events) seqs.push_back(e.seq);
  return seqs;
}

// Checks that the store holds exactly what `batch` recorded about its workflow, in the store's
// orders (std::string's operator< is byte order, as the stores' must be), with event seqs
// counting from first_seq.
inline void RequireHolds(Store& store, const Batch& batch, int64_t first_seq) {
  const std::string& uid = batch.workflow_upsert->uid;
  auto w = store.GetWorkflow(uid);
  REQUIRE(w);
  REQUIRE(w->has_value());
  CHECK(**w == *batch.workflow_upsert);

  auto nodes = store.ListNodes(uid);
  REQUIRE(nodes);
  std::vector<NodeRecord> want_nodes = batch.node_upserts;
  std::sort(want_nodes.begin(), want_nodes.end(),
            [](const NodeRecord& a, const NodeRecord& b) { return a.id < b.id; });
  CHECK(*nodes == want_nodes);

  auto params = store.ListParameters(uid);
  REQUIRE(params);
  std::vector<ParameterRecord> want_params = batch.parameter_upserts;
  std::sort(want_params.begin(), want_params.end(), [](const auto& a, const auto& b) {
    return std::tie(a.node_id, a.kind, a.name) < std::tie(b.node_id, b.kind, b.name);
  });
  CHECK(*params == want_params);

  auto artifacts = store.ListArtifacts(uid);
  REQUIRE(artifacts);
  std::vector<ArtifactRecord> want_artifacts = batch.artifact_inserts;
  std::sort(want_artifacts.begin(), want_artifacts.end(), [](const auto& a, const auto& b) {
    return std::tie(a.node_id, a.direction, a.name) < std::tie(b.node_id, b.direction, b.name);
  });
  CHECK(*artifacts == want_artifacts);

  auto events = store.ListEvents(uid, 0, 0);
  REQUIRE(events);
  std::vector<EventRecord> want_events = batch.events;
  for (size_t i = 0; i < want_events.size(); ++i) want_events[i].seq = first_seq + int64_t(i);
  CHECK(*events == want_events);
}

}  // namespace kiln::store::testing

#endif  // KILN_TESTS_STORE_BACKENDS_H_
