#include "store/sqlite_store.h"

#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "store/internal/schema.h"

namespace kiln::store {
namespace {

namespace fs = std::filesystem;

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
    fs::permissions(path_, fs::perms::owner_all, fs::perm_options::add, ec);
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string Garbage(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng() & 0xff);
  return s;
}

// Runs SQL on the file behind the store's back, as another program would.
void RawExec(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  char* err = nullptr;
  int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
  std::string message = err ? err : "";
  sqlite3_free(err);
  sqlite3_close(db);
  INFO(message);
  REQUIRE(rc == SQLITE_OK);
}

std::unique_ptr<SqliteStore> OpenOrFail(const std::string& path,
                                        const SqliteOptions& options = {}) {
  auto store = SqliteStore::Open(path, options);
  if (!store) FAIL(store.error().ToString());
  return std::move(*store);
}

WorkflowFilter Filter(const std::string& namespace_, const std::string& phase, int limit,
                      const std::string& continue_token = "") {
  WorkflowFilter f;
  f.namespace_ = namespace_;
  f.phase = phase;
  f.limit = limit;
  f.continue_token = continue_token;
  return f;
}

WorkflowRecord Workflow(const std::string& uid, const std::string& name,
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

NodeRecord Node(const std::string& uid, const std::string& id, std::optional<int> exit_code = {}) {
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

EventRecord Event(const std::string& uid, const std::string& node_id, const std::string& to) {
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

// A workflow with two nodes, parameters, artifacts and three events.
Batch FullBatch(const std::string& uid, const std::string& name) {
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

std::vector<int64_t> Seqs(const std::vector<EventRecord>& events) {
  std::vector<int64_t> seqs;
  for (const EventRecord& e : events) seqs.push_back(e.seq);
  return seqs;
}

// Everything the store holds about `uid`, in the store's order.
void RequireHolds(Store& store, const Batch& batch, int64_t first_seq) {
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

TEST_CASE("sqlite store round-trips every record type", "[store]") {
  TempDir dir;
  auto store = OpenOrFail(dir.File("kiln.db"));
  Batch batch = FullBatch("uid-1", "train-abc");
  REQUIRE(store->Apply(batch));
  RequireHolds(*store, batch, 1);

  auto found = store->FindWorkflow("default", "train-abc");
  REQUIRE(found);
  REQUIRE(found->has_value());
  CHECK((*found)->uid == "uid-1");
  CHECK(store->FindWorkflow("other", "train-abc").value() == std::nullopt);
  CHECK(store->GetWorkflow("nope").value() == std::nullopt);
  CHECK(store->ListNodes("nope").value().empty());

  SECTION("ListEvents pages by seq") {
    auto tail = store->ListEvents("uid-1", 1, 1);
    REQUIRE(tail);
    CHECK(Seqs(*tail) == std::vector<int64_t>{2});
    CHECK(Seqs(store->ListEvents("uid-1", 1, 0).value()) == std::vector<int64_t>{2, 3});
    CHECK(store->ListEvents("uid-1", 3, 0).value().empty());
  }

  SECTION("upserts replace rows and events append") {
    Batch update;
    update.workflow_upsert = batch.workflow_upsert;
    update.workflow_upsert->phase = "Succeeded";
    update.workflow_upsert->finished_at = 9000;
    update.node_upserts = {Node("uid-1", "uid-1.eval", 0)};
    update.parameter_upserts = {{"uid-1", "uid-1.train(0)", "loss", "0.25", "output"}};
    ArtifactRecord again = batch.artifact_inserts[0];
    again.sha256 = std::string(64, 'b');
    again.size = 7;
    update.artifact_inserts = {again};
    update.events = {Event("uid-1", "", "Succeeded")};
    REQUIRE(store->Apply(update));

    Batch want = batch;
    want.workflow_upsert = update.workflow_upsert;
    want.node_upserts[1] = update.node_upserts[0];
    want.parameter_upserts[2].value = "0.25";
    want.artifact_inserts[0] = again;
    want.events.push_back(update.events[0]);
    RequireHolds(*store, want, 1);
  }
}

TEST_CASE("sqlite store applies a batch all or nothing", "[store]") {
  TempDir dir;
  auto store = OpenOrFail(dir.File("kiln.db"));

  SECTION("a row for an unknown workflow at the end undoes the whole batch") {
    Batch batch = FullBatch("uid-1", "train-abc");
    batch.artifact_inserts.push_back({"ghost", "ghost.a", "out", "output", "file:///x", "", 1});
    auto applied = store->Apply(batch);
    REQUIRE_FALSE(applied);
    CHECK(applied.error().code() == Code::kFailedPrecondition);
    CHECK(applied.error().message() ==
          "cannot record output artifact \"out\" of node \"ghost.a\": workflow \"ghost\" does "
          "not exist");
    CHECK(store->GetWorkflow("uid-1").value() == std::nullopt);
    CHECK(store->ListNodes("uid-1").value().empty());
    CHECK(store->ListParameters("uid-1").value().empty());
    CHECK(store->ListArtifacts("uid-1").value().empty());
    CHECK(store->ListEvents("uid-1", 0, 0).value().empty());

    // The event counter rolled back with the batch: no seqs were burnt.
    Batch good = FullBatch("uid-1", "train-abc");
    REQUIRE(store->Apply(good));
    RequireHolds(*store, good, 1);
  }

  SECTION("a second workflow with the same namespace and name is refused") {
    REQUIRE(store->Apply(FullBatch("uid-1", "train-abc")));
    Batch dup;
    dup.workflow_upsert = Workflow("uid-2", "train-abc");
    auto applied = store->Apply(dup);
    REQUIRE_FALSE(applied);
    CHECK(applied.error().code() == Code::kAlreadyExists);
    CHECK(applied.error().message() ==
          "cannot record workflow \"uid-2\": a workflow named \"train-abc\" already exists in "
          "namespace \"default\"");
  }

  SECTION("empty keys are refused before touching the database") {
    Batch bad;
    bad.workflow_upsert = Workflow("", "x");
    CHECK(store->Apply(bad).error().code() == Code::kInvalidArgument);
    Batch bad_node;
    bad_node.node_upserts = {Node("uid-1", "")};
    CHECK(store->Apply(bad_node).error().code() == Code::kInvalidArgument);
    CHECK(store->Apply(Batch{}));
  }
}

TEST_CASE("sqlite store keeps everything across reopen, seqs keep increasing", "[store]") {
  TempDir dir;
  std::string path = dir.File("kiln.db");
  Batch first = FullBatch("uid-1", "one");
  Batch second = FullBatch("uid-2", "two");
  {
    auto store = OpenOrFail(path);
    REQUIRE(store->Apply(first));
  }
  {
    auto store = OpenOrFail(path);
    RequireHolds(*store, first, 1);
    REQUIRE(store->Apply(second));
    RequireHolds(*store, second, 4);
    CHECK(store->SchemaVersion().value() == internal::kLatestSchemaVersion);
  }
  auto store = OpenOrFail(path);
  RequireHolds(*store, first, 1);
  RequireHolds(*store, second, 4);
  // Each migration ran once although the file was opened three times.
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  REQUIRE(sqlite3_prepare_v2(db, "SELECT COUNT(*) FROM schema_migrations", -1, &stmt, nullptr) ==
          SQLITE_OK);
  REQUIRE(sqlite3_step(stmt) == SQLITE_ROW);
  CHECK(sqlite3_column_int(stmt, 0) == static_cast<int>(internal::kMigrations.size()));
  sqlite3_finalize(stmt);
  REQUIRE(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &stmt, nullptr) == SQLITE_OK);
  REQUIRE(sqlite3_step(stmt) == SQLITE_ROW);
  CHECK(std::string(reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0))) == "wal");
  sqlite3_finalize(stmt);
  sqlite3_close(db);
}

TEST_CASE("sqlite store lists workflows newest first with continue tokens", "[store]") {
  TempDir dir;
  auto store = OpenOrFail(dir.File("kiln.db"));
  // Seven workflows; three share a created_at so the uid breaks the tie.
  struct Row {
    const char* uid;
    const char* ns;
    int64_t created_at;
    const char* phase;
  };
  std::vector<Row> rows = {
      {"a", "default", 100, "Succeeded"}, {"b", "ml", 200, "Running"},
      {"c", "default", 300, "Running"},   {"d", "default", 300, "Failed"},
      {"e", "ml", 300, "Running"},        {"f", "default", 400, "Running"},
      {"g", "default", 500, "Succeeded"},
  };
  for (const Row& r : rows) {
    Batch b;
    b.workflow_upsert = Workflow(r.uid, std::string("wf-") + r.uid, r.ns, r.created_at, r.phase);
    REQUIRE(store->Apply(b));
  }
  auto uids_of = [&](WorkflowFilter filter) {
    std::vector<std::string> uids;
    std::vector<size_t> sizes;
    for (int pages = 0; pages < 20; ++pages) {
      auto page = store->ListWorkflows(filter);
      REQUIRE(page);
      sizes.push_back(page->workflows.size());
      for (const WorkflowRecord& w : page->workflows) uids.push_back(w.uid);
      if (page->continue_token.empty()) break;
      filter.continue_token = page->continue_token;
    }
    return std::pair(uids, sizes);
  };

  auto [all, all_pages] = uids_of(Filter("", "", 3));
  CHECK(all == std::vector<std::string>{"g", "f", "e", "d", "c", "b", "a"});
  CHECK(all_pages == std::vector<size_t>{3, 3, 1});

  auto [exact, exact_pages] = uids_of(Filter("", "", 7));
  CHECK(exact.size() == 7);
  CHECK(exact_pages == std::vector<size_t>{7});  // no empty last page

  auto [unlimited, unlimited_pages] = uids_of(Filter("", "", 0));
  CHECK(unlimited == all);

  auto [in_default, default_pages] = uids_of(Filter("default", "", 2));
  CHECK(in_default == std::vector<std::string>{"g", "f", "d", "c", "a"});
  CHECK(default_pages == std::vector<size_t>{2, 2, 1});

  auto [running, running_pages] = uids_of(Filter("", "Running", 1));
  CHECK(running == std::vector<std::string>{"f", "e", "c", "b"});

  auto [running_ml, _] = uids_of(Filter("ml", "Running", 0));
  CHECK(running_ml == std::vector<std::string>{"e", "b"});

  // A workflow created after the first page was read does not shift later pages.
  auto first = store->ListWorkflows(Filter("", "", 3));
  REQUIRE(first);
  Batch late;
  late.workflow_upsert = Workflow("z", "wf-z", "default", 600);
  REQUIRE(store->Apply(late));
  auto second = store->ListWorkflows(Filter("", "", 3, first->continue_token));
  REQUIRE(second);
  REQUIRE(second->workflows.size() == 3);
  CHECK(second->workflows[0].uid == "d");

  for (const char* token : {"garbage", "v1:", "v1:12", "v1:x:uid", "v1:12:"}) {
    auto bad = store->ListWorkflows(Filter("", "", 0, token));
    REQUIRE_FALSE(bad);
    CHECK(bad.error().code() == Code::kInvalidArgument);
  }
  CHECK(store->ListWorkflows(Filter("", "", 0, "garbage")).error().message() ==
        "invalid continue token \"garbage\"; pass the token from the previous page, or none for "
        "the first page");
}

TEST_CASE("sqlite store deletes a workflow with all its rows", "[store]") {
  TempDir dir;
  auto store = OpenOrFail(dir.File("kiln.db"));
  Batch keep = FullBatch("keep", "keep");
  Batch gone = FullBatch("gone", "gone");
  REQUIRE(store->Apply(keep));  // seqs 1..3
  REQUIRE(store->Apply(gone));  // seqs 4..6: the newest events
  REQUIRE(store->DeleteWorkflow("gone"));

  CHECK(store->GetWorkflow("gone").value() == std::nullopt);
  CHECK(store->FindWorkflow("default", "gone").value() == std::nullopt);
  CHECK(store->ListNodes("gone").value().empty());
  CHECK(store->ListParameters("gone").value().empty());
  CHECK(store->ListArtifacts("gone").value().empty());
  CHECK(store->ListEvents("gone", 0, 0).value().empty());
  RequireHolds(*store, keep, 1);

  auto again = store->DeleteWorkflow("gone");
  REQUIRE_FALSE(again);
  CHECK(again.error().code() == Code::kNotFound);
  CHECK(again.error().message() == "workflow \"gone\" does not exist");

  // Seqs of deleted events are never handed out again, and the name is free again.
  Batch reborn = FullBatch("gone-2", "gone");
  REQUIRE(store->Apply(reborn));
  RequireHolds(*store, reborn, 7);
}

TEST_CASE("sqlite store refuses a file that is not a kiln database and leaves it as it was",
          "[store]") {
  TempDir dir;
  std::string path = dir.File("kiln.db");
  std::string why;

  SECTION("4 KiB of garbage") {
    WriteBytes(path, Garbage(4096, 1));
    why = "file is not a database";
  }
  SECTION("a SQLite header followed by garbage") {
    WriteBytes(path, std::string("SQLite format 3\0", 16) + Garbage(4096 - 16, 2));
    why = "file is not a database";
  }
  SECTION("a text file shorter than a header") {
    WriteBytes(path, "hello\n");
    why = "file is not a database";
  }
  SECTION("another program's SQLite database") {
    RawExec(path,
            "CREATE TABLE accounts (id INTEGER PRIMARY KEY, owner TEXT);"
            "INSERT INTO accounts (owner) VALUES ('alice');");
    why = "a SQLite database without kiln's schema_migrations table";
  }

  std::string before = ReadBytes(path);
  REQUIRE_FALSE(before.empty());
  auto store = SqliteStore::Open(path);
  REQUIRE_FALSE(store);
  CHECK(store.error().code() == Code::kFailedPrecondition);
  CHECK(store.error().message() ==
        path + " is not a kiln database (" + why + "); move it aside or pass another --data-dir");
  CHECK(ReadBytes(path) == before);
  CHECK_FALSE(fs::exists(path + "-wal"));
  CHECK_FALSE(fs::exists(path + "-journal"));
}

TEST_CASE("sqlite store explains a data directory it cannot use", "[store]") {
  TempDir dir;

  SECTION("missing directory") {
    std::string path = dir.File("missing/kiln.db");
    auto store = SqliteStore::Open(path);
    REQUIRE_FALSE(store);
    CHECK(store.error().code() == Code::kInvalidArgument);
    CHECK(store.error().message() == "cannot create database " + path + ": directory " +
                                         dir.File("missing") +
                                         " does not exist; create it or pass another --data-dir");
  }

  SECTION("a regular file where the directory should be (fails for root too)") {
    WriteBytes(dir.File("file.txt"), "not a directory\n");
    std::string path = dir.File("file.txt/kiln.db");
    auto store = SqliteStore::Open(path);
    REQUIRE_FALSE(store);
    CHECK(store.error().code() == Code::kInvalidArgument);
    CHECK(store.error().message() == "cannot create database " + path + ": " +
                                         dir.File("file.txt") +
                                         " is not a directory; pass another --data-dir");
    CHECK(ReadBytes(dir.File("file.txt")) == "not a directory\n");
  }

  SECTION("the database path is a directory") {
    fs::create_directory(dir.File("kiln.db"));
    auto store = SqliteStore::Open(dir.File("kiln.db"));
    REQUIRE_FALSE(store);
    CHECK(store.error().code() == Code::kInvalidArgument);
    CHECK(store.error().message() == "cannot open database " + dir.File("kiln.db") +
                                         ": it is a directory; pass another --data-dir");
  }

  SECTION("a missing file when asked not to create one") {
    std::string path = dir.File("kiln.db");
    SqliteOptions options;
    options.create_if_missing = false;
    auto store = SqliteStore::Open(path, options);
    REQUIRE_FALSE(store);
    CHECK(store.error().code() == Code::kNotFound);
    CHECK_FALSE(fs::exists(path));
  }

  SECTION("a directory without write permission") {
    if (geteuid() == 0) {
      WARN("running as root: permission bits do not stop root, chmod-based check skipped");
      return;
    }
    std::string sub = dir.File("ro");
    fs::create_directory(sub);
    REQUIRE(chmod(sub.c_str(), 0500) == 0);
    auto store = SqliteStore::Open(sub + "/kiln.db");
    REQUIRE_FALSE(store);
    CHECK(store.error().code() == Code::kInvalidArgument);
    CHECK(store.error().message() == "cannot open database " + sub + "/kiln.db: directory " + sub +
                                         " is not writable (Permission denied); fix its "
                                         "permissions or pass another --data-dir");
  }
}

TEST_CASE("sqlite store refuses a schema newer than it knows", "[store]") {
  TempDir dir;
  std::string path = dir.File("kiln.db");
  { OpenOrFail(path); }
  RawExec(path, "INSERT INTO schema_migrations (version, applied_at) VALUES (99, 0)");
  std::string before = ReadBytes(path);
  auto store = SqliteStore::Open(path);
  REQUIRE_FALSE(store);
  CHECK(store.error().code() == Code::kFailedPrecondition);
  CHECK(store.error().message() == "database schema version 99 is newer than this kiln (" +
                                       std::to_string(internal::kLatestSchemaVersion) +
                                       "); upgrade kiln");
  CHECK(store.error().where() == path);
  CHECK(ReadBytes(path) == before);
}

TEST_CASE("sqlite store records every batch applied from several threads", "[store]") {
  TempDir dir;
  // What is under test is serialization, not fsync: NORMAL keeps 2,000 commits fast.
  SqliteOptions options;
  options.durability = Durability::kNormal;
  auto store = OpenOrFail(dir.File("kiln.db"), options);
  Batch create;
  create.workflow_upsert = Workflow("uid-1", "busy");
  REQUIRE(store->Apply(create));

  constexpr int kThreads = 4;
  constexpr int kBatches = 500;
  std::vector<std::thread> threads;
  std::vector<int> failures(kThreads, 0);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kBatches; ++i) {
        std::string id = "uid-1.t" + std::to_string(t) + "-" + std::to_string(i);
        Batch b;
        b.node_upserts = {Node("uid-1", id, 0)};
        b.events = {Event("uid-1", id, "Succeeded")};
        if (!store->Apply(b)) ++failures[t];
        if (i % 100 == 0 && !store->ListEvents("uid-1", 0, 10)) ++failures[t];
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  CHECK(failures == std::vector<int>(kThreads, 0));

  auto events = store->ListEvents("uid-1", 0, 0);
  REQUIRE(events);
  REQUIRE(events->size() == kThreads * kBatches);
  for (size_t i = 0; i < events->size(); ++i) REQUIRE((*events)[i].seq == int64_t(i) + 1);
  auto nodes = store->ListNodes("uid-1");
  REQUIRE(nodes);
  CHECK(nodes->size() == kThreads * kBatches);
  std::set<std::string> node_ids;
  for (const EventRecord& e : *events) node_ids.insert(e.node_id);
  CHECK(node_ids.size() == kThreads * kBatches);
}

TEST_CASE("sqlite store loses no acknowledged batch when the process is killed -9", "[store]") {
  TempDir dir;
  std::string path = dir.File("kiln.db");
  { OpenOrFail(path); }  // create and migrate before forking
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    // The child: apply batches forever, acknowledging each one after Apply returned.
    close(fds[0]);
    auto store = SqliteStore::Open(path);
    if (!store) _exit(2);
    Batch create;
    create.workflow_upsert = Workflow("uid-1", "crash");
    if (!(*store)->Apply(create)) _exit(3);
    for (int64_t i = 1;; ++i) {
      Batch b;
      std::string id = "uid-1.n" + std::to_string(i);
      b.node_upserts = {Node("uid-1", id, 0)};
      b.events = {Event("uid-1", id, "Succeeded")};
      if (!(*store)->Apply(b)) _exit(4);
      if (write(fds[1], &i, sizeof i) != sizeof i) _exit(5);
    }
  }
  close(fds[1]);
  int64_t acked = 0;
  int64_t value = 0;
  while (acked < 40 && read(fds[0], &value, sizeof value) == sizeof value) acked = value;
  REQUIRE(kill(pid, SIGKILL) == 0);
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  CHECK(WIFSIGNALED(status));
  while (read(fds[0], &value, sizeof value) == sizeof value) acked = value;
  close(fds[0]);
  REQUIRE(acked >= 40);

  auto store = OpenOrFail(path);
  auto events = store->ListEvents("uid-1", 0, 0);
  REQUIRE(events);
  // Every acknowledged batch is there; at most the one in flight at the kill may be too.
  REQUIRE(int64_t(events->size()) >= acked);
  CHECK(int64_t(events->size()) <= acked + 1);
  for (size_t i = 0; i < events->size(); ++i) {
    REQUIRE((*events)[i].seq == int64_t(i) + 1);
    REQUIRE((*events)[i].node_id == "uid-1.n" + std::to_string(i + 1));
  }
  CHECK(store->ListNodes("uid-1").value().size() == events->size());
  // The store still takes writes after the crash.
  Batch after;
  after.events = {Event("uid-1", "", "Failed")};
  REQUIRE(store->Apply(after));
  CHECK(store->ListEvents("uid-1", int64_t(events->size()), 0).value().size() == 1);
}

TEST_CASE("sqlite store reports a lock held too long as unavailable", "[store]") {
  TempDir dir;
  std::string path = dir.File("kiln.db");
  SqliteOptions options;
  options.busy_timeout_ms = 20;
  auto store = OpenOrFail(path, options);
  sqlite3* other = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &other) == SQLITE_OK);
  REQUIRE(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK);

  auto applied = store->Apply(FullBatch("uid-1", "locked"));
  REQUIRE_FALSE(applied);
  CHECK(applied.error().code() == Code::kUnavailable);
  CHECK(applied.error().message() == "cannot begin a transaction: database is locked");
  CHECK(applied.error().where() == path);
  // Reads are not blocked by a writer in WAL mode.
  CHECK(store->ListWorkflows(Filter("", "", 0)));

  REQUIRE(sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr) == SQLITE_OK);
  sqlite3_close(other);
  REQUIRE(store->Apply(FullBatch("uid-1", "locked")));
}

TEST_CASE("sqlite store works in memory", "[store]") {
  auto store = OpenOrFail(":memory:");
  Batch batch = FullBatch("uid-1", "mem");
  REQUIRE(store->Apply(batch));
  RequireHolds(*store, batch, 1);
}

}  // namespace
}  // namespace kiln::store
