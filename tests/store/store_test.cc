// The behaviour every Store implementation must have (docs/store.md), run against each backend:
// SQLite always, PostgreSQL when KILN_TEST_POSTGRES_URL names a server. Each test has a fresh
// database of its own. What only one implementation does (SQLite's files, PostgreSQL's
// connections) is tested in sqlite_store_test.cc and postgres_store_test.cc.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "store/internal/schema.h"
#include "tests/store/backends.h"

namespace kiln::store::testing {
namespace {

STORE_TEST("store counts every committed change, and only those") {
  auto backend = TestType::Make();
  if (!backend) return;
  auto store = OpenOrFail(*backend);
  int64_t start = store->ChangeCount().value();
  REQUIRE(store->Apply(FullBatch("uid-1", "train-abc")));
  int64_t after_apply = store->ChangeCount().value();
  CHECK(after_apply > start);
  // Reads and refused batches change nothing.
  CHECK(store->ListNodes("uid-1"));
  CHECK_FALSE(store->Apply(FullBatch("uid-2", "train-abc")));  // the name is taken
  CHECK(store->ChangeCount().value() == after_apply);
  // A batch without events (a node's upsert) counts too.
  Batch nodes;
  nodes.node_upserts = {Node("uid-1", "uid-1.extra", 0)};
  REQUIRE(store->Apply(nodes));
  int64_t after_nodes = store->ChangeCount().value();
  CHECK(after_nodes > after_apply);
  REQUIRE(store->DeleteWorkflow("uid-1"));
  CHECK(store->ChangeCount().value() > after_nodes);
  CHECK_FALSE(store->DeleteWorkflow("uid-1"));
  CHECK(store->ChangeCount().value() == after_nodes + 1);
}

STORE_TEST("store counts workflows by phase") {
  auto backend = TestType::Make();
  if (!backend) return;
  auto store = OpenOrFail(*backend);
  CHECK(store->CountWorkflowsByPhase().value().empty());
  for (auto [uid, phase] : {std::pair{"u1", "Running"}, {"u2", "Running"}, {"u3", "Failed"}}) {
    Batch b;
    b.workflow_upsert = Workflow(uid, std::string("wf-") + uid);
    b.workflow_upsert->phase = phase;
    REQUIRE(store->Apply(b));
  }
  CHECK(store->CountWorkflowsByPhase().value() == std::map<std::string, int64_t>{{"Failed", 1}, {"Running", 2}});
}

STORE_TEST("store round-trips every record type") {
  auto backend = TestType::Make();
  if (!backend) return;
  auto store = OpenOrFail(*backend);
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

  SECTION("text survives byte for byte: UTF-8, quotes, backslashes, long values") {
    Batch odd;
    odd.workflow_upsert = Workflow("uid-2", "ünïcödé-ワークフロー");
    odd.workflow_upsert->message = "it's \"quoted\" \\ and\ttabbed\nand multi-line";
    odd.workflow_upsert->spec = std::string(1 << 20, 'x');  // 1 MiB
    NodeRecord n = Node("uid-2", "uid-2.step?$1", 0);
    n.exit_code = -9;
    n.attempt = 2147483647;
    odd.node_upserts = {n};
    odd.artifact_inserts = {{"uid-2", n.id, "big", "output", "file:///big", "", int64_t{1} << 40}};
    REQUIRE(store->Apply(odd));
    RequireHolds(*store, odd, 4);
  }
}

STORE_TEST("store applies a batch all or nothing") {
  auto backend = TestType::Make();
  if (!backend) return;
  auto store = OpenOrFail(*backend);

  SECTION("a row for an unknown workflow at the end undoes the whole batch") {
    Batch batch = FullBatch("uid-1", "train-abc");
    batch.artifact_inserts.push_back({"ghost", "ghost.a", "out", "output", "file:///x", "", 1});
    auto applied = store->Apply(batch);
    REQUIRE_FALSE(applied);
    CHECK(applied.error().code() == Code::kFailedPrecondition);
    CHECK(applied.error().message() ==
          "cannot record output artifact \"out\" of node \"ghost.a\": workflow \"ghost\" does "
          "not exist");
    CHECK(applied.error().where() == backend->where());
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

  SECTION("an event of an unknown workflow undoes the rows before it") {
    Batch batch = FullBatch("uid-1", "train-abc");
    batch.events.push_back(Event("ghost", "ghost.a", "Running"));
    auto applied = store->Apply(batch);
    REQUIRE_FALSE(applied);
    CHECK(applied.error().code() == Code::kFailedPrecondition);
    CHECK(applied.error().message() ==
          "cannot record NodePhase event of node \"ghost.a\": workflow \"ghost\" does not exist");
    CHECK(store->GetWorkflow("uid-1").value() == std::nullopt);
    CHECK(store->ListEvents("uid-1", 0, 0).value().empty());
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
    // The store is usable after a failed batch.
    REQUIRE(store->Apply(FullBatch("uid-3", "train-def")));
    RequireHolds(*store, FullBatch("uid-3", "train-def"), 4);
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

STORE_TEST("store keeps everything across reopen, seqs keep increasing") {
  auto backend = TestType::Make();
  if (!backend) return;
  Batch first = FullBatch("uid-1", "one");
  Batch second = FullBatch("uid-2", "two");
  {
    auto store = OpenOrFail(*backend);
    REQUIRE(store->Apply(first));
  }
  {
    auto store = OpenOrFail(*backend);
    RequireHolds(*store, first, 1);
    REQUIRE(store->Apply(second));
    RequireHolds(*store, second, 4);
  }
  auto store = OpenOrFail(*backend);
  RequireHolds(*store, first, 1);
  RequireHolds(*store, second, 4);
  // Each migration ran once although the database was opened three times.
  CHECK(backend->RawInt("SELECT COUNT(*) FROM schema_migrations") ==
        static_cast<int64_t>(internal::kMigrations.size()));
  CHECK(backend->RawInt("SELECT MAX(version) FROM schema_migrations") ==
        internal::kLatestSchemaVersion);
}

// A database written by a kiln of schema version 1, made here with that version's migration
// (migrations never change once shipped), opens with its rows and gains the newer tables.
STORE_TEST("store migrates a version 1 database and keeps its rows") {
  auto backend = TestType::Make();
  if (!backend) return;
  backend->RawExec(std::string(internal::kCreateMigrationsTable));
  for (std::string_view sql : internal::kMigration1) backend->RawExec(std::string(sql));
  backend->RawExec("INSERT INTO schema_migrations (version, applied_at) VALUES (1, 0)");
  backend->RawExec(
      "INSERT INTO workflows (uid, name, namespace, kind, spec, parameters_json, phase, message, "
      "created_at, started_at, finished_at) VALUES ('uid-1', 'old', 'default', 'Workflow', "
      "'spec: {}', '', 'Running', '', 1000, 1005, 0)");
  backend->RawExec(
      "INSERT INTO events (seq, workflow_uid, node_id, at, kind, from_phase, to_phase, message, "
      "data_json) VALUES (1, 'uid-1', '', 1000, 'WorkflowPhase', '', 'Running', '', '')");
  backend->RawExec("UPDATE kiln_counters SET value = 1 WHERE name = 'event_seq'");

  auto store = OpenOrFail(*backend);
  CHECK(backend->RawInt("SELECT MAX(version) FROM schema_migrations") ==
        internal::kLatestSchemaVersion);
  CHECK(backend->RawInt("SELECT COUNT(*) FROM schema_migrations") ==
        static_cast<int64_t>(internal::kMigrations.size()));
  auto old = store->GetWorkflow("uid-1");
  REQUIRE(old);
  REQUIRE(old->has_value());
  CHECK((*old)->name == "old");
  CHECK((*old)->started_at == 1005);
  CHECK((*old)->labels.empty());
  CHECK(Seqs(store->ListEvents("uid-1", 0, 0).value()) == std::vector<int64_t>{1});

  // The old workflow takes labels and is selected by them; the new tables work.
  WorkflowRecord labelled = **old;
  labelled.labels = {{"app", "web"}};
  Batch batch;
  batch.workflow_upsert = labelled;
  batch.events = {Event("uid-1", "", "Succeeded")};
  REQUIRE(store->Apply(batch));
  WorkflowFilter filter = Filter("", "", 0);
  filter.label_selector = "app=web";
  auto page = store->ListWorkflows(filter);
  REQUIRE(page);
  REQUIRE(page->workflows.size() == 1);
  CHECK(page->workflows[0] == labelled);
  CHECK(Seqs(store->ListEvents("uid-1", 0, 0).value()) == std::vector<int64_t>{1, 2});
  TemplateRecord t;
  t.namespace_ = "default";
  t.name = "hello";
  t.kind = std::string(kWorkflowTemplate);
  REQUIRE(store->PutTemplate(t));
  CHECK(store->GetTemplate(t.kind, "default", "hello").value() == t);

  // Opening again migrates nothing more.
  store.reset();
  auto again = OpenOrFail(*backend);
  CHECK(backend->RawInt("SELECT COUNT(*) FROM schema_migrations") ==
        static_cast<int64_t>(internal::kMigrations.size()));
  CHECK(again->GetWorkflow("uid-1").value() == labelled);
}

STORE_TEST("store lists workflows newest first with continue tokens") {
  auto backend = TestType::Make();
  if (!backend) return;
  auto store = OpenOrFail(*backend);
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

// PostgreSQL's default collations sort "a" before "B" and ignore punctuation; kiln's orders and
// continue tokens are in byte order everywhere, as SQLite's BINARY.
STORE_TEST("store orders text by bytes, whatever the database's collation") {
  auto backend = TestType::Make();
  if (!backend) return;
  auto store = OpenOrFail(*backend);
  std::vector<std::string> ids = {"b", "B", "_x", "a", "Z", "a-b", "ab", "é", "A"};
  std::vector<std::string> sorted = ids;
  std::sort(sorted.begin(), sorted.end());
  REQUIRE(sorted == std::vector<std::string>{"A", "B", "Z", "_x", "a", "a-b", "ab", "b", "é"});

  Batch batch;
  batch.workflow_upsert = Workflow("wf", "wf");
  for (const std::string& id : ids) {
    batch.node_upserts.push_back(Node("wf", id));
    batch.parameter_upserts.push_back({"wf", "", id, "v", "input"});
    batch.artifact_inserts.push_back({"wf", "n", id, "output", "file:///x", "", 1});
  }
  REQUIRE(store->Apply(batch));
  for (const std::string& uid : ids) {
    Batch b;
    b.workflow_upsert = Workflow("u" + uid, "w" + uid, "ns", 7);
    REQUIRE(store->Apply(b));
  }
  auto nodes = store->ListNodes("wf");
  auto params = store->ListParameters("wf");
  auto artifacts = store->ListArtifacts("wf");
  REQUIRE(nodes);
  REQUIRE(params);
  REQUIRE(artifacts);
  std::vector<std::string> node_ids, param_names, artifact_names, uids;
  for (const NodeRecord& n : *nodes) node_ids.push_back(n.id);
  for (const ParameterRecord& p : *params) param_names.push_back(p.name);
  for (const ArtifactRecord& a : *artifacts) artifact_names.push_back(a.name);
  WorkflowFilter filter = Filter("ns", "", 2);
  for (int pages = 0; pages < 20; ++pages) {
    auto page = store->ListWorkflows(filter);
    REQUIRE(page);
    for (const WorkflowRecord& w : page->workflows) uids.push_back(w.uid.substr(1));
    if (page->continue_token.empty()) break;
    filter.continue_token = page->continue_token;
  }
  CHECK(node_ids == sorted);
  CHECK(param_names == sorted);
  CHECK(artifact_names == sorted);
  std::vector<std::string> newest_first(sorted.rbegin(), sorted.rend());
  CHECK(uids == newest_first);
}

STORE_TEST("store deletes a workflow with all its rows") {
  auto backend = TestType::Make();
  if (!backend) return;
  auto store = OpenOrFail(*backend);
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

STORE_TEST("store removes nodes with their parameters and artifacts before writing nodes") {
  auto backend = TestType::Make();
  if (!backend) return;
  auto store = OpenOrFail(*backend);
  Batch first = FullBatch("uid-1", "train");
  Batch other = FullBatch("uid-2", "other");
  REQUIRE(store->Apply(first));
  REQUIRE(store->Apply(other));

  // A retry: train(0) is removed and written again (without its old outputs), eval is removed,
  // a key without a row is no error; the other workflow's rows with the same ids stay.
  Batch retry;
  retry.node_deletes = {{"uid-1", "uid-1.train(0)"}, {"uid-1", "uid-1.eval"}, {"uid-1", "uid-1.never"}};
  NodeRecord again = first.node_upserts[0];
  again.phase = "Pending";
  retry.node_upserts = {again};
  REQUIRE(store->Apply(retry));
  auto nodes = store->ListNodes("uid-1");
  REQUIRE(nodes);
  REQUIRE(nodes->size() == 2);
  CHECK((*nodes)[0].id == "uid-1.fail");
  CHECK((*nodes)[1] == again);
  auto params = store->ListParameters("uid-1");
  REQUIRE(params);
  REQUIRE(params->size() == 1);
  CHECK((*params)[0].name == "message");  // the workflow's own
  CHECK(store->ListArtifacts("uid-1").value().empty());
  CHECK(store->ListEvents("uid-1", 0, 0).value().size() == 3);  // the log keeps its history
  RequireHolds(*store, other, 4);

  Batch bad;
  bad.node_deletes = {{"uid-1", ""}};
  auto refused = store->Apply(bad);
  REQUIRE_FALSE(refused);
  CHECK(refused.error().code() == Code::kInvalidArgument);
}

STORE_TEST("store refuses a schema newer than it knows") {
  auto backend = TestType::Make();
  if (!backend) return;
  { OpenOrFail(*backend); }
  backend->RawExec("INSERT INTO schema_migrations (version, applied_at) VALUES (99, 0)");
  auto store = backend->Open();
  REQUIRE_FALSE(store);
  CHECK(store.error().code() == Code::kFailedPrecondition);
  CHECK(store.error().message() == "database schema version 99 is newer than this kiln (" +
                                       std::to_string(internal::kLatestSchemaVersion) +
                                       "); upgrade kiln");
  CHECK(store.error().where() == backend->where());
  // Nothing was written: the refused version is still the newest, and only once.
  CHECK(backend->RawInt("SELECT COUNT(*) FROM schema_migrations") ==
        static_cast<int64_t>(internal::kMigrations.size()) + 1);
}

STORE_TEST("store records every batch applied from several threads") {
  auto backend = TestType::Make();
  if (!backend) return;
  // What is under test is serialization, not fsync.
  auto store = OpenOrFail(*backend, Speed::kFast);
  Batch create;
  create.workflow_upsert = Workflow("uid-1", "busy");
  REQUIRE(store->Apply(create));

  constexpr int kThreads = 4;
  constexpr int kBatches = 500;
  std::vector<std::thread> threads;
  std::vector<int> failures(kThreads, 0);
  std::vector<std::string> first_error(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      int64_t last_seen = 0;
      for (int i = 0; i < kBatches; ++i) {
        std::string id = "uid-1.t" + std::to_string(t) + "-" + std::to_string(i);
        Batch b;
        b.node_upserts = {Node("uid-1", id, 0)};
        b.events = {Event("uid-1", id, "Succeeded")};
        if (auto applied = store->Apply(b); !applied) {
          if (failures[t]++ == 0) first_error[t] = applied.error().ToString();
        }
        if (i % 50 == 0) {
          // A reader tailing the log never sees a gap: every seq it is shown follows the last.
          auto tail = store->ListEvents("uid-1", last_seen, 0);
          if (!tail) {
            ++failures[t];
            continue;
          }
          for (const EventRecord& e : *tail) {
            if (e.seq != last_seen + 1) ++failures[t];
            last_seen = e.seq;
          }
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  INFO(first_error[0] + first_error[1] + first_error[2] + first_error[3]);
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

STORE_TEST("store loses no acknowledged batch when the process is killed -9") {
  auto backend = TestType::Make();
  if (!backend) return;
  { OpenOrFail(*backend); }  // create and migrate before forking
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    // The child: apply batches forever, acknowledging each one after Apply returned.
    close(fds[0]);
    auto store = backend->Open();
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

  auto store = OpenOrFail(*backend);
  // The killed child's transaction, if one was open, is rolled back when the server notices the
  // connection closed; a write here waits for its locks until then.
  Batch after;
  after.events = {Event("uid-1", "", "Failed")};
  REQUIRE(store->Apply(after));
  auto events = store->ListEvents("uid-1", 0, 0);
  REQUIRE(events);
  REQUIRE(!events->empty());
  events->pop_back();  // `after`
  // Every acknowledged batch is there; at most the one in flight at the kill may be too.
  REQUIRE(int64_t(events->size()) >= acked);
  CHECK(int64_t(events->size()) <= acked + 1);
  for (size_t i = 0; i < events->size(); ++i) {
    REQUIRE((*events)[i].seq == int64_t(i) + 1);
    REQUIRE((*events)[i].node_id == "uid-1.n" + std::to_string(i + 1));
  }
  CHECK(store->ListNodes("uid-1").value().size() == events->size());
}

}  // namespace
}  // namespace kiln::store::testing
