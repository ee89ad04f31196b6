// What only PostgresStore does: connection strings, passwords kept out of messages, a server
// that cannot be reached or goes away, concurrent migrations. The behaviour every store shares
// is tested against PostgreSQL (and SQLite) in store_test.cc.
#include "store/postgres_store.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <string>
#include <thread>
#include <vector>

#include "store/internal/schema.h"
#include "tests/store/backends.h"

namespace kiln::store::testing {
namespace {

// Fast failures for the tests that expect them.
PostgresOptions Impatient() {
  PostgresOptions options;
  options.connect_attempts = 2;
  options.initial_backoff = std::chrono::milliseconds(1);
  options.connect_timeout_s = 5;
  return options;
}

// A loopback port on which nothing listens while this object lives: bound, never listening,
// so a connection to it is refused at once.
class ClosedPort {
 public:
  ClosedPort() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    REQUIRE(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    socklen_t len = sizeof addr;
    REQUIRE(getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    port_ = ntohs(addr.sin_port);
  }
  ~ClosedPort() { close(fd_); }
  ClosedPort(const ClosedPort&) = delete;
  ClosedPort& operator=(const ClosedPort&) = delete;
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

TEST_CASE("postgres store names URLs without their passwords", "[store]") {
  CHECK(PostgresStore::RedactUrl(
            "postgresql://kiln:s3cret@db.example:5432/kiln?sslmode=require&password=x") ==
        "postgresql://kiln@db.example:5432/kiln?sslmode=require");
  CHECK(PostgresStore::RedactUrl("postgresql://kiln:s3cret@[::1]:5432/kiln") ==
        "postgresql://kiln@[::1]:5432/kiln");
  CHECK(PostgresStore::RedactUrl("postgres://u@h/d") == "postgres://u@h/d");
  CHECK(PostgresStore::RedactUrl("postgresql:///kiln?host=/run/postgresql") ==
        "postgresql:///kiln?host=/run/postgresql");
  CHECK(PostgresStore::RedactUrl("postgresql://h/d?password=only") == "postgresql://h/d");
  CHECK(PostgresStore::RedactUrl("host=h user=u password=secret dbname=d") ==
        "user=u dbname=d host=h");
  CHECK(PostgresStore::RedactUrl("host=h password='it s' application_name='a b'") ==
        "host=h application_name='a b'");
  CHECK(PostgresStore::RedactUrl("postgresql://u:p@h/%zz") == "<unparsable connection string>");
  CHECK(PostgresStore::RedactUrl("not a connection string") == "<unparsable connection string>");
}

TEST_CASE("postgres store refuses a connection string libpq does not accept", "[store]") {
  auto store = PostgresStore::Open("postgresql://kiln:s3cret@localhost/kiln?nonsense=1");
  REQUIRE_FALSE(store);
  CHECK(store.error().code() == Code::kInvalidArgument);
  CHECK(store.error().message() ==
        "invalid PostgreSQL connection string (invalid URI query parameter: \"nonsense\"); pass a "
        "URL such as postgresql://user@host:5432/kiln");
  CHECK(store.error().ToString().find("s3cret") == std::string::npos);

  auto empty = PostgresStore::Open("");
  REQUIRE_FALSE(empty);
  CHECK(empty.error().code() == Code::kInvalidArgument);
}

TEST_CASE("postgres store reports a server it cannot reach as unavailable, by its URL", "[store]") {
  ClosedPort closed;
  std::string port = std::to_string(closed.port());
  auto store =
      PostgresStore::Open("postgresql://kiln:s3cret@127.0.0.1:" + port + "/kiln", Impatient());
  REQUIRE_FALSE(store);
  const Error& error = store.error();
  CHECK(error.code() == Code::kUnavailable);
  CHECK(error.where() == "postgresql://kiln@127.0.0.1:" + port + "/kiln");
  INFO(error.message());
  CHECK(
      error.message().starts_with("cannot connect to PostgreSQL server postgresql://kiln@"
                                  "127.0.0.1:" +
                                  port + "/kiln (connection to server at \"127.0.0.1\", port " +
                                  port + " failed: Connection refused"));
  CHECK(error.message().ends_with("); tried 2 times"));
  CHECK(error.ToString().find("s3cret") == std::string::npos);
}

TEST_CASE("postgres store reconnects when the server drops its connections", "[store]") {
  auto backend = PostgresBackend::Make();
  if (!backend) return;
  auto opened = PostgresStore::Open(backend->url(), Impatient());
  if (!opened) FAIL(opened.error().ToString());
  PostgresStore& store = **opened;
  Batch first = FullBatch("uid-1", "one");
  REQUIRE(store.Apply(first));

  // Every connection of the store's is killed, as by a server restart: the next call finds its
  // pooled connection dead before it could commit anything, and runs again on a new one.
  auto terminate = [&] {
    std::string count;
    INFO(
        backend->AdminExec("SELECT COUNT(pg_terminate_backend(pid, 10000)) FROM "
                           "pg_stat_activity WHERE datname = '" +
                               backend->name() + "'",
                           &count));
    REQUIRE(count != "0");
  };
  terminate();
  Batch second = FullBatch("uid-2", "two");
  REQUIRE(store.Apply(second));
  RequireHolds(store, second, 4);

  // The server stays away: the call fails, clearly, naming the server.
  REQUIRE(
      backend->AdminExec("ALTER DATABASE " + backend->name() + " ALLOW_CONNECTIONS false").empty());
  terminate();
  Batch third = FullBatch("uid-3", "three");
  auto applied = store.Apply(third);
  REQUIRE_FALSE(applied);
  CHECK(applied.error().code() == Code::kUnavailable);
  CHECK(applied.error().where() == backend->where());
  INFO(applied.error().message());
  CHECK(applied.error().message().starts_with("cannot connect to PostgreSQL server " +
                                              backend->where() + " ("));
  CHECK(applied.error().message().find("is not currently accepting connections") !=
        std::string::npos);
  CHECK_FALSE(store.GetWorkflow("uid-1"));

  // It comes back: the next call connects again, and nothing was lost or half-applied.
  REQUIRE(
      backend->AdminExec("ALTER DATABASE " + backend->name() + " ALLOW_CONNECTIONS true").empty());
  REQUIRE(store.Apply(third));
  RequireHolds(store, first, 1);
  RequireHolds(store, second, 4);
  RequireHolds(store, third, 7);
}

TEST_CASE("postgres store applies each migration once when started many times at once", "[store]") {
  auto backend = PostgresBackend::Make();
  if (!backend) return;
  constexpr int kOpeners = 6;
  std::vector<std::string> errors(kOpeners);
  std::vector<std::thread> threads;
  for (int i = 0; i < kOpeners; ++i) {
    threads.emplace_back([&, i] {
      auto store = PostgresStore::Open(backend->url());
      if (!store) errors[i] = store.error().ToString();
    });
  }
  for (std::thread& thread : threads) thread.join();
  CHECK(errors == std::vector<std::string>(kOpeners));
  CHECK(backend->RawInt("SELECT COUNT(*) FROM schema_migrations") ==
        static_cast<int64_t>(internal::kMigrations.size()));
}

TEST_CASE("postgres store refuses a database with kiln's tables but no schema_migrations",
          "[store]") {
  auto backend = PostgresBackend::Make();
  if (!backend) return;
  backend->RawExec("CREATE TABLE workflows (id INTEGER)");
  auto store = PostgresStore::Open(backend->url());
  REQUIRE_FALSE(store);
  CHECK(store.error().code() == Code::kFailedPrecondition);
  CHECK(store.error().message() ==
        "PostgreSQL database " + backend->where() +
            " has a workflows table but no schema_migrations table: it is not a kiln database; "
            "pass another database");
  CHECK(backend->RawInt("SELECT COUNT(*) FROM pg_tables WHERE tablename = 'schema_migrations'") ==
        0);
}

TEST_CASE("postgres store refuses text PostgreSQL cannot hold, and stays usable", "[store]") {
  auto backend = PostgresBackend::Make();
  if (!backend) return;
  auto store = OpenOrFail(*backend);
  Batch batch = FullBatch("uid-1", "nul");
  batch.node_upserts[0].message = std::string("a\0b", 3);
  auto applied = store->Apply(batch);
  REQUIRE_FALSE(applied);
  CHECK(applied.error().code() == Code::kInvalidArgument);
  CHECK(applied.error().message() ==
        "cannot record node \"uid-1.train(0)\": a value contains a NUL byte, which PostgreSQL "
        "text cannot hold");
  CHECK(store->GetWorkflow("uid-1").value() == std::nullopt);

  Batch bad_utf8 = FullBatch("uid-1", "nul");
  bad_utf8.workflow_upsert->message = "\xff\xfe";
  auto refused = store->Apply(bad_utf8);
  REQUIRE_FALSE(refused);
  CHECK(refused.error().code() == Code::kInvalidArgument);
  CHECK(store->GetWorkflow("uid-1").value() == std::nullopt);

  REQUIRE(store->Apply(FullBatch("uid-1", "nul")));
  RequireHolds(*store, FullBatch("uid-1", "nul"), 1);
}

TEST_CASE("postgres store waits for a connection when all are in use", "[store]") {
  auto backend = PostgresBackend::Make();
  if (!backend) return;
  PostgresOptions options;
  options.pool_size = 1;
  auto opened = PostgresStore::Open(backend->url(), options);
  if (!opened) FAIL(opened.error().ToString());
  PostgresStore& store = **opened;
  Batch create;
  create.workflow_upsert = Workflow("uid-1", "pool");
  REQUIRE(store.Apply(create));
  std::vector<std::thread> threads;
  std::vector<int> failures(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        Batch b;
        std::string id = "n" + std::to_string(t) + "-" + std::to_string(i);
        b.node_upserts = {Node("uid-1", id)};
        b.events = {Event("uid-1", id, "Running")};
        if (!store.Apply(b) || !store.ListNodes("uid-1")) ++failures[t];
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  CHECK(failures == std::vector<int>(4, 0));
  CHECK(store.ListEvents("uid-1", 0, 0).value().size() == 200);
  CHECK(backend->RawInt("SELECT COUNT(*) FROM pg_stat_activity WHERE datname = '" +
                        backend->name() + "' AND application_name = 'kiln'") == 1);
}

}  // namespace
}  // namespace kiln::store::testing
