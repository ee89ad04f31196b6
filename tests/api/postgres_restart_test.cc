// PostgreSQL restarted under load: a kiln server in this process (engine and API on an
// io_context thread, steps as host processes) on a PostgresStore, workflows submitted from
// several client threads, and the database server stopped and started again midway. Every
// accepted submission must be recorded and succeed, with each of its events recorded once.
//
// Runs on the server scripts/with-postgres.sh starts for the tests that restart theirs
// (KILN_TEST_POSTGRES_RESTART_URL and KILN_TEST_POSTGRES_RESTART_CTL), in a database of its own;
// without them it passes with a warning. Waiting is on the engine's change notifications,
// bounded; the clients' pause between attempts is their backoff, not synchronisation.
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <future>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "api/api_server.h"
#include "api/engine.h"
#include "api/metrics.h"
#include "http/client.h"
#include "store/postgres_store.h"
#include "tests/store/backends.h"

namespace kiln::api {
namespace {

using Json = nlohmann::json;
using namespace std::chrono_literals;

const char* kThreeSteps = R"(apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {generateName: restart-}
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - [{name: one, template: echo}]
    - [{name: two, template: echo}]
    - [{name: three, template: echo}]
  - name: echo
    container: {image: alpine, command: [echo, hi]}
)";

constexpr const char* kNamespace = "restart";

bool IsFinal(const std::string& phase) {
  return phase == "Succeeded" || phase == "Failed" || phase == "Error";
}

// Runs the server's pg_ctl with `args` (see scripts/with-postgres.sh); starts the server again at
// scope exit if a test left it stopped, for the tests that come after.
class ServerControl {
 public:
  explicit ServerControl(std::string ctl) : ctl_(std::move(ctl)) {}
  ~ServerControl() {
    if (down_) (void)Run("start");
  }
  ServerControl(const ServerControl&) = delete;
  ServerControl& operator=(const ServerControl&) = delete;

  bool Stop() {
    down_ = true;
    return Run("stop -m fast");
  }
  bool Start() {
    bool started = Run("start");
    if (started) down_ = false;
    return started;
  }

 private:
  bool Run(const std::string& args) {
    return std::system((ctl_ + " " + args + " >/dev/null").c_str()) == 0;
  }

  std::string ctl_;
  bool down_ = false;
};

// The server of the test: a PostgresStore on a database of its own, the engine and the API on an
// io_context thread.
struct PostgresServer {
  store::testing::TempDir dir;
  store::testing::PostgresBackend database;
  std::unique_ptr<store::PostgresStore> db;
  boost::asio::io_context io;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work{io.get_executor()};
  std::unique_ptr<Engine> engine;
  Metrics metrics;
  std::unique_ptr<ApiServer> server;
  std::thread thread;
  http::Endpoint endpoint;

  explicit PostgresServer(const std::string& admin_url) : database(admin_url) {
    auto opened = store::PostgresStore::Open(database.url());
    if (!opened) FAIL(opened.error().ToString());
    db = std::move(*opened);
    EngineOptions eo;
    eo.data_dir = dir.path();
    eo.sandbox = false;
    auto engine_or = Engine::Create(io, *db, eo);
    REQUIRE(engine_or);
    engine = std::move(*engine_or);
    ApiServerOptions options;
    options.read_threads = 2;
    auto s = ApiServer::Start(io, *engine, *db, metrics, options);
    REQUIRE(s);
    server = std::move(*s);
    endpoint.url = server->url();
    endpoint.timeout = 120s;  // a submission waits behind the engine's calls to a stopped server
    thread = std::thread([this] { io.run(); });
  }
  ~PostgresServer() {
    boost::asio::post(io, [this] {
      server->Stop();
      engine->Shutdown();
      work.reset();
    });
    thread.join();
    server.reset();
    engine.reset();
    db.reset();  // before the database is dropped
  }

  // Runs `f` on the io_context thread and returns what it returns.
  template <typename F>
  auto OnIo(F f) -> decltype(f()) {
    std::packaged_task<decltype(f())()> task(std::move(f));
    auto result = task.get_future();
    boost::asio::post(io, [&task] { task(); });
    return result.get();
  }
};

// What the clients saw, shared between their threads.
struct Submissions {
  std::mutex mu;
  std::condition_variable changed;
  std::vector<std::string> accepted;    // names, in the order they were accepted
  std::vector<std::string> unexpected;  // "status body" of answers that were neither
  int unavailable = 0;                  // 503 answers with gRPC code 14 (then submitted again)
  int clients_done = 0;
};

}  // namespace

TEST_CASE("PostgreSQL restarted under load: the server reconnects and loses nothing",
          "[api][postgres]") {
  const char* url = std::getenv("KILN_TEST_POSTGRES_RESTART_URL");
  const char* ctl = std::getenv("KILN_TEST_POSTGRES_RESTART_CTL");
  if (url == nullptr || *url == '\0' || ctl == nullptr || *ctl == '\0') {
    WARN(
        "PostgreSQL restart: skipped: KILN_TEST_POSTGRES_RESTART_URL or _CTL unset "
        "(scripts/with-postgres.sh sets them)");
    SUCCEED();
    return;
  }
  constexpr int kWorkflows = 100;
  constexpr int kClients = 4;
  constexpr int kRestartAfter = 30;  // accepted submissions before the database stops

  PostgresServer s(url);
  // Destroyed first: the server is up again before the database is dropped.
  ServerControl control(ctl);

  // Final phases by workflow name, as the engine announces them (subscribed before anything is
  // submitted, so that none is missed).
  std::mutex phases_mu;
  std::condition_variable phases_changed;
  std::map<std::string, std::string> final_phases;
  int listener = s.OnIo([&] {
    return s.engine->Subscribe([&](const store::WorkflowRecord& w, ChangeType) {
      if (w.namespace_ != kNamespace || !IsFinal(w.phase)) return;
      std::lock_guard lock(phases_mu);
      final_phases[w.name] = w.phase;
      phases_changed.notify_all();
    });
  });

  Submissions subs;
  std::atomic<int> next{0};
  std::atomic<bool> quit{false};  // the test is ending early: the clients stop
  auto client = [&] {
    while (!quit && next.fetch_add(1) < kWorkflows) {
      const auto deadline = std::chrono::steady_clock::now() + 120s;
      auto backoff = 20ms;
      for (;;) {
        auto r = http::Fetch(s.endpoint, "POST", std::string("/api/v1/workflows/") + kNamespace,
                             kThreeSteps, {{"Content-Type", "application/yaml"}});
        std::unique_lock lock(subs.mu);
        if (!r) {
          subs.unexpected.push_back("no answer: " + r.error().ToString());
          break;
        }
        Json body = Json::parse(r->body, nullptr, false);
        if (r->status == 200 && body.is_object()) {
          subs.accepted.push_back(body["metadata"]["name"].get<std::string>());
          subs.changed.notify_all();
          break;
        }
        bool retry = r->status == 503 && body.is_object() && body.value("code", 0) == 14;
        if (!retry || std::chrono::steady_clock::now() > deadline || quit) {
          subs.unexpected.push_back(std::to_string(r->status) + " " + r->body);
          break;
        }
        ++subs.unavailable;
        subs.changed.notify_all();
        lock.unlock();
        std::this_thread::sleep_for(backoff);  // the client's backoff before it submits again
        backoff = std::min(backoff * 2, std::chrono::milliseconds(500));
      }
    }
    std::lock_guard lock(subs.mu);
    ++subs.clients_done;
    subs.changed.notify_all();
  };
  std::vector<std::thread> clients;
  // A failed REQUIRE below leaves by an exception: the clients still end first.
  struct Joiner {
    std::vector<std::thread>& threads;
    std::atomic<bool>& quit;
    ~Joiner() {
      quit = true;
      for (std::thread& t : threads) {
        if (t.joinable()) t.join();
      }
    }
  } joiner{clients, quit};
  for (int i = 0; i < kClients; ++i) clients.emplace_back(client);

  // Midway, the database stops; it starts again once every client was turned away at least
  // once (or all are done), so that the outage is long enough for running workflows to need it.
  size_t in_flight_at_stop = 0;
  {
    std::unique_lock lock(subs.mu);
    REQUIRE(subs.changed.wait_for(lock, 300s, [&] {
      return subs.accepted.size() >= kRestartAfter || subs.clients_done == kClients;
    }));
  }
  {
    std::lock_guard lock(phases_mu);
    std::lock_guard lock2(subs.mu);
    for (const std::string& name : subs.accepted)
      in_flight_at_stop += final_phases.count(name) == 0 ? 1 : 0;
  }
  REQUIRE(control.Stop());
  {
    std::unique_lock lock(subs.mu);
    CHECK(subs.changed.wait_for(
        lock, 300s, [&] { return subs.unavailable >= kClients || subs.clients_done == kClients; }));
  }
  REQUIRE(control.Start());

  for (std::thread& t : clients) t.join();
  INFO("unexpected answers: " << Json(subs.unexpected).dump(1));
  CHECK(subs.unexpected.empty());
  CHECK(subs.accepted.size() == kWorkflows);
  // Clients were turned away while the database was down: the restart happened under load.
  CHECK(subs.unavailable > 0);
  WARN("PostgreSQL restart: " << in_flight_at_stop
                              << " workflows running when the database stopped, "
                              << subs.unavailable << " submissions answered 503 and sent again");

  // Every accepted workflow reaches a final phase (bounded: a stuck one fails the test here).
  {
    std::unique_lock lock(phases_mu);
    bool all = phases_changed.wait_for(lock, 180s, [&] {
      for (const std::string& name : subs.accepted) {
        if (final_phases.count(name) == 0) return false;
      }
      return true;
    });
    std::vector<std::string> stuck;
    for (const std::string& name : subs.accepted) {
      if (final_phases.count(name) == 0) stuck.push_back(name);
    }
    INFO("not finished: " << Json(stuck).dump());
    CHECK(all);
    for (const std::string& name : subs.accepted) {
      auto it = final_phases.find(name);
      if (it != final_phases.end()) CHECK(it->second == "Succeeded");
    }
  }
  s.OnIo([&] {
    s.engine->Unsubscribe(listener);
    return 0;
  });

  // The store holds exactly the accepted workflows, all Succeeded, each with all its nodes
  // Succeeded and each event it was driven by recorded once.
  store::WorkflowFilter filter;
  filter.namespace_ = kNamespace;
  filter.limit = 500;
  auto page = s.db->ListWorkflows(filter);
  REQUIRE(page);
  REQUIRE(page->continue_token.empty());
  std::set<std::string> recorded;
  for (const store::WorkflowRecord& w : page->workflows) {
    recorded.insert(w.name);
    INFO("workflow " << w.name);
    CHECK(w.phase == "Succeeded");
    auto nodes = s.db->ListNodes(w.uid);
    REQUIRE(nodes);
    CHECK(nodes->size() == 7);  // the steps node, three step groups, three pods
    for (const store::NodeRecord& n : *nodes) CHECK(n.phase == "Succeeded");
    auto events = s.db->ListEvents(w.uid, 0, 0);
    REQUIRE(events);
    std::multiset<std::string> inputs;
    for (const store::EventRecord& e : *events) {
      if (e.kind == "Input") inputs.insert(e.data_json);
    }
    // StartWorkflow, then each pod's StepStarted and StepFinished: seven events, none twice.
    CHECK(inputs.size() == 7);
    CHECK(std::set<std::string>(inputs.begin(), inputs.end()).size() == inputs.size());
  }
  CHECK(recorded == std::set<std::string>(subs.accepted.begin(), subs.accepted.end()));
}

}  // namespace kiln::api
